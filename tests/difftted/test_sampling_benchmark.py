"""benchmarks/sampling_steps.py runs end to end on the bundled weights (a benchmark that no test
runs rots: this one did, after a module move)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_sampling_steps_benchmark_runs_and_pairs_its_spread_ratio() -> None:
    if not (REPO / "weights" / "pipeline.json").is_file():
        pytest.skip("the bundled weights (weights/) are absent")
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "sampling_steps.py"), "--speech", str(REPO / "examples" / "speech.wav"),
         "--seconds", "1", "--seeds", "2", "--configs", "ddim:3", "--threads", "1"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split("|")[1].strip() + ":" + line.split("|")[2].strip(): [c.strip() for c in line.split("|")[3:-1]]
            for line in result.stdout.splitlines() if line.startswith("| ddim |")}
    assert set(rows) == {"ddim:50", "ddim:3"}, result.stdout
    reference, fewer = rows["ddim:50"], rows["ddim:3"]
    assert float(reference[1]) == 0.0 and reference[-1] == "1.000 (1.000-1.000)"  # DDIM-50 against itself
    assert float(fewer[1]) > 0.0  # 3 steps sample another motion from the same noise
    assert "spread ratio of two seeds" in result.stdout
