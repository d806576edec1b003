"""``difftted.interfaces.batch``: the jobs table, per-job failure isolation, and 2 CPU processes for real."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from difftted.interfaces.batch import read_jobs, run_job

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_jobs_table_paths_defaults_and_bad_cells(tmp_path):
    table = _write(tmp_path / "jobs.csv", "image,audio,seed,steps,crop,out\n"
                                          "a.png,a.wav,,,,\n"
                                          "/abs/b.png,b.wav,7,3,yes,b.mp4\n"
                                          "c.png,c.wav,seven,,,\n")
    jobs = read_jobs(table, tmp_path / "out")
    assert [j.index for j in jobs] == [0, 1, 2]
    assert jobs[0].image == tmp_path / "a.png" and jobs[0].options == {"seed": 0}
    assert jobs[0].out == tmp_path / "out" / "0000_a.mp4"
    assert jobs[1].image == Path("/abs/b.png") and jobs[1].options == {"seed": 7, "steps": 3, "crop": True}
    assert jobs[1].out == tmp_path / "out" / "b.mp4" and jobs[1].error is None
    assert jobs[2].error is not None and "seven" in jobs[2].error and "row 3" in jobs[2].error


@pytest.mark.parametrize("text, message", [
    ("image,voice\na.png,a.wav\n", "missing \\['audio'\\]"),
    ("image,audio,colour\na.png,a.wav,red\n", "unknown \\['colour'\\]"),
    ("image,audio\n", "no job rows"),
])
def test_bad_tables_are_refused(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_jobs(_write(tmp_path / "jobs.csv", text), tmp_path)


def test_a_failing_job_is_reported_not_raised(tiny_pipeline, tmp_path, astronaut_path):
    soundfile.write(str(tmp_path / "silent.wav"), np.zeros(8000, np.float32), 16000)
    jobs = read_jobs(_write(tmp_path / "jobs.csv", f"image,audio\n{astronaut_path},silent.wav\n"
                                                   f"{tmp_path}/missing.png,silent.wav\n"), tmp_path / "out")
    results = [run_job(tiny_pipeline, job, progress=False) for job in jobs]
    assert [r["status"] for r in results] == ["failed", "failed"]
    assert "silent" in results[0]["error"] and "missing.png" in results[1]["error"]
    assert results[0]["output"] == ""


@pytest.mark.slow
def test_two_cpu_processes_split_jobs_and_gather_results(tmp_path, tiny_pipeline_dir, astronaut_path, speech_path):
    from tests.media import stream_codecs

    shutil.copy(astronaut_path, tmp_path / "photo.png")
    wave, sr = soundfile.read(str(speech_path), dtype="float32")
    soundfile.write(str(tmp_path / "speech.wav"), wave[: int(0.4 * sr)], sr)  # 10 frames at 25 fps
    soundfile.write(str(tmp_path / "silent.wav"), np.zeros(8000, np.float32), 16000)
    _write(tmp_path / "jobs.csv", "image,audio,seed,steps,crop\n"
                                  "photo.png,speech.wav,1,2,yes\n"
                                  "photo.png,silent.wav,2,2,yes\n"
                                  "photo.png,speech.wav,3,1,\n")
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", "29617"]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    run = subprocess.run([*launcher, "-m", "difftted.batch", "--jobs", "jobs.csv", "--out", "out",
                          "--weights", str(tiny_pipeline_dir), "--cpu", "--quiet"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    with (tmp_path / "out" / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["job"] for r in rows] == ["0", "1", "2"]
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"]
    assert "silent" in rows[1]["error"] and rows[1]["output"] == ""
    for row in (rows[0], rows[2]):
        assert stream_codecs(tmp_path / row["output"]) == {"video": "h264", "audio": "aac"}
    # both processes ran jobs: contiguous blocks [0, 1] and [2]
    assert "process 0 runs jobs [0, 1]" in run.stderr and "process 1 runs jobs [2]" in run.stderr
