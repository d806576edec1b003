"""Issue 10's bars over several seeds: the json files of scripts/demo_weights_v2/evaluate.sh runs
(one per seed) gathered into one markdown table per input, v1 and v2 as mean [min, max] over the
seeds beside the real footage, with each bar and whether v2's mean meets it.

    for s in 0 1 2; do SEED=$s TAG=v2_s$s bash scripts/demo_weights_v2/evaluate.sh; done
    python scripts/demo_weights_v2/seed_table.py --eval $WORK/eval_v2 --tags v2_s0 v2_s1 v2_s2

One seed is not a measurement here: the same settings differ by up to 0.006 in mouth-opening
std and 0.05 in lip correlation between seeds (and between thread counts, which change the
sampled motion through float rounding).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

#: (label, key, chance key or None, bar: "v1" = no lower than v1, "chance+x" = x above chance, number = at least,
#: None = no bar, shown beside the others)
ROWS = (
    ("wrist speed (SW/s)", "wrist_speed", None, 0.05),
    ("head speed (SW/s)", "head_speed", None, 0.05),
    ("head speed, face mesh (no bar)", "head_speed_face", None, None),
    ("body BC (chance)", "beat_consistency", "beat_consistency_chance", "chance+0"),
    ("mouth opening std", "mouth_std", None, 0.012),
    ("lip-loudness r (chance)", "lip_corr", "lip_corr_chance", "chance+0.10"),
    ("face SSIM vs photo", "face_ssim", None, "v1"),
    ("face SSIM, aligned (no bar)", "face_ssim_aligned", None, None),
)


def _video_entry(data: dict, role: str) -> dict:
    keys = list(data)
    if role == "real":
        return data[next(k for k in keys if k.startswith("real"))]
    return data[keys[0] if role == "v1" else keys[1]]


def _span(values: list[float | None], digits: int) -> str:
    values = [v for v in values if v is not None]  # None: not measurable (e.g. wrists out of view)
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]"


def table(eval_dir: Path, name: str, tags: list[str]) -> str:
    runs = [json.loads((eval_dir / f"{name}_{tag}.json").read_text()) for tag in tags]
    v1 = [_video_entry(r, "v1") for r in runs]
    v2 = [_video_entry(r, "v2") for r in runs]
    real = _video_entry(runs[0], "real")
    lines = [f"| {name} | v1 | v2 | real | bar | v2 meets it |", "|---|---|---|---|---|---|"]
    for label, key, chance, bar in ROWS:
        digits = 4 if key == "mouth_std" else 3
        cells = []
        for group in (v1, v2):
            vals = [g.get(key) for g in group]  # judgements from before a measure existed lack it
            text = _span(vals, digits)
            if chance:
                text += f" ({_span([g[chance] for g in group], digits)})"
            cells.append(text)
        real_text = _span([real.get(key)], digits) + (f" ({_span([real[chance]], digits)})" if chance else "")
        if bar is None:
            lines.append(f"| {label} | {cells[0]} | {cells[1]} | {real_text} | - | - |")
            continue
        if any(g[key] is None for g in v2) or (bar == "v1" and any(g[key] is None for g in v1)):
            lines.append(f"| {label} | {cells[0]} | {cells[1]} | {real_text} | - | not measurable |")
            continue
        mean_v2 = statistics.fmean(g[key] for g in v2)
        if bar == "v1":
            limit, bar_text = statistics.fmean(g[key] for g in v1), ">= v1"
        elif isinstance(bar, str):
            margin = float(bar.split("+")[1])
            limit = statistics.fmean(g[chance] for g in v2) + margin
            bar_text = "> chance" if margin == 0 else f">= chance + {margin:g}"
        else:
            limit, bar_text = bar, f">= {bar:g}"
        ok = mean_v2 > limit if bar == "chance+0" else mean_v2 >= limit
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {real_text} | {bar_text} | {'yes' if ok else '**no**'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", required=True, help="evaluate.sh's EVAL folder")
    parser.add_argument("--tags", nargs="+", required=True, help="the runs' TAGs, one per seed")
    parser.add_argument("--names", nargs="+", default=["couch", "ted", "astro"])
    args = parser.parse_args(argv)
    for name in args.names:
        print(table(Path(args.eval), name, args.tags))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
