"""Picture the renderer's part masks (docs/images/part_masks.png): on one photo, the parts'
capsules, and one frame with the right arm raised about its elbow, rendered with and without the
part masks, beside the pixels that count as uncovered (the ghost mask, filled from around).

    python scripts/part_masks_figure.py --weights DIR --image PHOTO --out OUT.png [--angle 50]

DIR is a pipeline folder on body keypoints (pipeline.json ``"keypoints": "body"``). The drive is
the photo's own keypoints with the right forearm and hand turned by ``--angle`` degrees about the
elbow (towards the head), the rest at rest: what a gesture asks of the renderer.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from difftted.motion.body_keypoints import TRANSFORMS, keypoint_index, part_layout  # noqa: E402

COLOURS = [(255, 60, 60), (255, 0, 200), (0, 220, 90), (140, 255, 140), (0, 200, 255), (120, 220, 255),
           (60, 90, 255), (190, 120, 255)]


def raised_arm(kp: torch.Tensor, degrees: float, side: str = "right") -> torch.Tensor:
    """``kp`` ``[N, 2]`` with ``side``'s forearm and hand keypoints turned about its elbow."""
    elbow = kp[keypoint_index(f"{side}_forearm", "elbow")].clone()
    turn = math.radians(degrees) * (1 if side == "right" else -1)
    rot = torch.tensor([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]], dtype=kp.dtype)
    out = kp.clone()
    for transform in (f"{side}_forearm", f"{side}_hand"):
        idx = slice(5 * TRANSFORMS.index(transform), 5 * TRANSFORMS.index(transform) + 5)
        out[idx] = (kp[idx] - elbow) @ rot.T + elbow
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--angle", type=float, default=50.0, help="degrees the forearm turns about the elbow")
    p.add_argument("--size", type=int, default=256, help="side of each panel in pixels")
    args = p.parse_args(argv)

    from difftted.pipeline import DiffTEDPipeline
    from tps.parts import capsule_masks
    from tps.transform import make_coordinate_grid

    pipe = DiffTEDPipeline.from_pretrained(args.weights)
    if pipe.keypoint_source != "body":
        raise SystemExit(f"--weights must be a body-keypoint pipeline, got keypoints {pipe.keypoint_source!r}")
    photo = np.asarray(Image.open(args.image).convert("RGB"))
    box, crop = pipe.crop_person(photo)
    kp = pipe.source_keypoints(photo, box)
    kp = torch.as_tensor(np.asarray(kp), dtype=torch.float32).reshape(-1, 2)
    drive = raised_arm(kp, args.angle)[None]

    panels, titles = [], []
    layout = part_layout()
    with_parts = pipe.frame_renderer
    prepared = pipe.prepare_source(photo, box, crop)  # with the person's mask, as the pipeline
    maps = next(iter(with_parts.iter_render_maps(prepared, drive, batch_size=1, progress=False)))
    frame_parts = with_parts.render(prepared, drive, progress=False)[0]
    pipe.part_masks = False
    plain = pipe.frame_renderer
    frame_plain = plain.render(plain.prepare(crop, kp[None]), drive, progress=False)[0]
    pipe.part_masks = True

    def to_image(x: torch.Tensor) -> Image.Image:
        return Image.fromarray((x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).resize(
            (args.size, args.size), Image.BILINEAR)

    src = to_image(prepared.source[0].float().cpu())
    grid = make_coordinate_grid(args.size, args.size)[None]
    masks = capsule_masks(layout, kp[None], layout.unit_length(kp[None]), grid)[0].numpy()  # [P, H, W]
    over = np.asarray(src).astype(np.float32)
    for i, m in enumerate(masks):
        colour = np.array(COLOURS[i % len(COLOURS)], np.float32)
        over = over * (1 - 0.45 * m[..., None]) + colour * 0.45 * m[..., None]
    panels.append(Image.fromarray(over.round().astype(np.uint8)))
    titles.append("the parts' capsules (at rest)")
    panels.append(to_image(frame_plain))
    titles.append(f"forearm +{args.angle:.0f} deg, network maps only")
    panels.append(to_image(frame_parts))
    titles.append("the same, with part masks")
    visible = torch.nn.functional.interpolate(maps.occlusion.float().cpu(), size=(args.size, args.size),
                                              mode="bilinear")[0, 0].numpy()[..., None]
    fp = np.asarray(to_image(frame_parts)).astype(np.float32)
    fp = fp * (1 - 0.6 * (1 - visible)) + np.array([255, 0, 0], np.float32) * 0.6 * (1 - visible)
    panels.append(Image.fromarray(fp.round().astype(np.uint8)))
    titles.append("red: occluded, so generated / filled")

    pad = 22
    sheet = Image.new("RGB", (args.size * len(panels), args.size + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (panel, title) in enumerate(zip(panels, titles)):
        sheet.paste(panel, (i * args.size, pad))
        draw.text((i * args.size + 4, 5), title, fill=(0, 0, 0))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
