"""Many (photo, speech) jobs across processes or GPUs:

    accelerate launch -m difftted.batch --jobs jobs.csv --out DIR [--weights W]
    python -m difftted batch --jobs jobs.csv --out DIR            # one process

``jobs.csv`` has the columns ``image,audio`` and optionally ``seed, steps, guidance, fps,
motion_scale, crop, out``; relative paths are relative to the csv's folder, an empty cell means
the default, ``seed`` defaults to the job's row number (so a job's video does not depend on how
many processes share the work) and ``out`` to ``DIR/<row>_<image name>.mp4``.

Jobs are split across the processes in contiguous blocks; each process loads the pipeline once.
A job that fails (bad file, silent audio, ...) is recorded and skipped, the others go on. The main
process gathers every result into ``DIR/results.csv`` (``job, status, output, seconds, error``).
The exit status is 0 once the table is written (failed jobs are in it), or with ``--strict`` 1
when any job failed.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("image", "audio")
OPTIONAL_COLUMNS = {"seed": int, "steps": int, "guidance": float, "fps": float, "motion_scale": float,
                    "crop": str, "out": str}
RESULT_COLUMNS = ("job", "status", "output", "seconds", "error")
_TRUE, _FALSE = {"1", "true", "yes", "y"}, {"", "0", "false", "no", "n"}


@dataclass
class Job:
    """One row of the jobs table. ``error`` is set when the row itself is malformed."""

    index: int
    image: Path
    audio: Path
    out: Path
    options: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def read_jobs(path: str | Path, out_dir: Path) -> list[Job]:
    """Parse ``path`` (see the module docstring). Header problems raise ValueError; a bad cell
    marks only its own job as failed."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"--jobs file {str(path)!r} does not exist")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        unknown = sorted(set(header) - set(REQUIRED_COLUMNS) - set(OPTIONAL_COLUMNS))
        if missing or unknown:
            raise ValueError(f"--jobs {str(path)!r}: columns {header}; missing {missing}, unknown {unknown} "
                             f"(allowed: {list(REQUIRED_COLUMNS) + list(OPTIONAL_COLUMNS)})")
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if not rows:
        raise ValueError(f"--jobs {str(path)!r} holds no job rows")
    return [_parse_row(i, row, path.parent, out_dir) for i, row in enumerate(rows)]


def _parse_row(index: int, row: dict[str, str], base: Path, out_dir: Path) -> Job:
    resolve = lambda text: Path(text) if Path(text).is_absolute() else base / text  # noqa: E731
    image, audio = resolve(row["image"]), resolve(row["audio"])
    out = out_dir / (row.get("out") or f"{index:04d}_{image.stem or 'job'}.mp4")
    job = Job(index, image, audio, out, {"seed": index})
    try:
        for name, kind in OPTIONAL_COLUMNS.items():
            text = row.get(name, "")
            if name == "out" or text == "":
                continue
            if name == "crop":
                if text.lower() not in _TRUE | _FALSE:
                    raise ValueError(f"crop must be true or false, got {text!r}")
                job.options[name] = text.lower() in _TRUE
            else:
                job.options[name] = kind(text)
        if not row["image"] or not row["audio"]:
            raise ValueError("image and audio must not be empty")
    except ValueError as err:
        job.error = f"row {index + 1}: {err}"
    return job


def run_job(pipe: Any, job: Job, progress: bool) -> dict[str, Any]:
    """Run one job; never raises: a failure becomes a row with ``status="failed"``."""
    import torch

    start = time.perf_counter()
    if job.error is not None:
        return _result(job, "failed", start, job.error)
    opts = job.options
    try:
        generator = torch.Generator(device=pipe.device).manual_seed(opts["seed"])
        pipe(job.image, job.audio, num_inference_steps=opts.get("steps"), guidance_scale=opts.get("guidance"),
             generator=generator, fps=opts.get("fps"), motion_scale=opts.get("motion_scale", 1.0),
             output="crop" if opts.get("crop") else "full", output_path=job.out, return_frames=False,
             progress=progress)
    # One job's failure, whatever it is, must not stop the others: it is reported in results.csv,
    # and anything that is not bad input is logged with its traceback.
    except Exception as err:  # noqa: BLE001
        if isinstance(err, (ValueError, OSError)):
            logger.error("job %d failed: %s", job.index, err)
        else:
            logger.exception("job %d failed with an unexpected error", job.index)
        return _result(job, "failed", start, f"{type(err).__name__}: {' '.join(str(err).split())}")
    logger.info("job %d done: %s", job.index, job.out)
    return _result(job, "ok", start, "")


def _result(job: Job, status: str, start: float, error: str) -> dict[str, Any]:
    return {"job": job.index, "status": status, "output": str(job.out) if status == "ok" else "",
            "seconds": round(time.perf_counter() - start, 3), "error": error}


def write_results(path: Path, results: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(sorted(results, key=lambda r: r["job"]))
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accelerate launch -m difftted.batch",
                                     description="Generate talking videos for every row of a jobs csv.")
    parser.add_argument("--jobs", required=True, type=Path, help="csv with columns image,audio[,seed,steps,...]")
    parser.add_argument("--out", required=True, type=Path, help="output folder (videos and results.csv)")
    parser.add_argument("--weights", default=None, help="pipeline folder or Hub repo id")
    parser.add_argument("--cpu", action="store_true", help="run on CPU even where GPUs exist")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when any job failed")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s [%(process)d] %(message)s")
    from accelerate import Accelerator
    from accelerate.utils import gather_object

    from difftted.pipeline import DiffTEDPipeline

    jobs = read_jobs(args.jobs, args.out)  # every process parses the same table: no broadcast needed
    accelerator = Accelerator(cpu=args.cpu)
    try:
        if accelerator.is_main_process:
            args.out.mkdir(parents=True, exist_ok=True)
        pipe = DiffTEDPipeline.from_pretrained(args.weights, device=accelerator.device)
        progress = accelerator.is_local_main_process and not args.quiet
        accelerator.wait_for_everyone()
        with accelerator.split_between_processes(jobs) as mine:
            logger.info("process %d runs jobs %s", accelerator.process_index, [j.index for j in mine])
            results = [run_job(pipe, job, progress) for job in mine]
        results = gather_object(results)
        failed = sum(r["status"] != "ok" for r in results)
        if accelerator.is_main_process:
            table = write_results(args.out / "results.csv", results)
            print(f"{len(results) - failed}/{len(results)} jobs succeeded; results in {table}")
        accelerator.wait_for_everyone()
    finally:
        _end_distributed()
    return 1 if args.strict and failed else 0


def _end_distributed() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    from difftted.__main__ import run_command

    sys.exit(run_command(main))
