"""The bad-input catalogue against ``python -m difftted generate`` as real processes: each case
ends in exactly one ``error:`` line naming what is wrong, no traceback; the huge photo and the
hour-long compressed audio are bounded in memory (peak RSS of the child, from ``os.wait4``).
Memory, not time, is asserted: the machine running the tests may be shared."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.pipeline import bad_input_files as files

REPO = Path(__file__).resolve().parents[2]




def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop("DIFFTTED_WEIGHTS", None)
    return env


def run_cli(args: list[str], cwd: Path) -> tuple[int, str, str, float]:
    """Run the CLI; (exit status, stdout, stderr, peak RSS in MB of the process and its children)."""
    out, err = cwd / f"out_{os.getpid()}_{len(args)}.txt", cwd / f"err_{os.getpid()}_{len(args)}.txt"
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "difftted", "generate", *args, "--quiet"], cwd=cwd,
                                env=_env(), stdout=fo, stderr=fe)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, out.read_text(), err.read_text(), usage.ru_maxrss / 1024


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, astronaut_path, tone_path, tiny_pipeline_dir) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("catalogue")
    jpeg = d / "good.jpg"
    Image.open(astronaut_path).convert("RGB").save(jpeg, quality=90)
    made = {f"photo {k}": v for k, v in files.unreadable_photos(d / "photos", jpeg).items()}
    made.update(bomb=files.write_bomb_png(d / "bomb.png", 20000), dir=d, audio=tone_path,
                weights=tiny_pipeline_dir, image=astronaut_path)
    return made


def _argv(inputs: dict[str, Path], **overrides: str) -> list[str]:
    args = {"--image": str(inputs["image"]), "--audio": str(inputs["audio"]),
            "--out": str(inputs["dir"] / "ok.mp4"), "--weights": str(inputs["weights"])}
    args.update(overrides)
    return [x for kv in args.items() for x in kv]


def _one_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:") or ": error:" in line]
    assert len(errors) == 1, stderr
    return errors[0]


CASES = {
    # name: (overrides with {key} from `inputs`, what the one error line must hold)
    "bomb": ({"--image": "{bomb}"}, "photos are limited to 150 megapixels"),
    "empty photo": ({"--image": "{photo empty}"}, "is not a readable image"),
    "text photo": ({"--image": "{photo text}"}, "is not a readable image"),
    "svg photo": ({"--image": "{photo svg}"}, "is not a readable image"),
    "pdf named png": ({"--image": "{photo pdf}"}, "is not a readable image"),
    "truncated jpeg": ({"--image": "{photo truncated jpeg}"}, "is not a readable image"),
    "fps 1000": ({"--fps": "1000"}, "--fps must be between 1 and 60"),
    "fps 0": ({"--fps": "0"}, "--fps must be between 1 and 60"),
    "seed -1": ({"--seed": "-1"}, "--seed must be a whole number between 0 and"),
    "max-side 1": ({"--max-side": "1"}, "--max-side must be a whole number of at least 64"),
}


@pytest.fixture(scope="module")
def runs(inputs) -> dict[str, subprocess.CompletedProcess]:
    """Every case at once (each process spends most of its time importing)."""
    procs = {}
    for name, (overrides, _) in CASES.items():
        argv = _argv(inputs, **{k: v.format(**{key: inputs[key] for key in inputs}) for k, v in overrides.items()})
        procs[name] = subprocess.Popen([sys.executable, "-m", "difftted", "generate", *argv, "--quiet"],
                                       cwd=inputs["dir"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


@pytest.mark.parametrize("name", list(CASES))
def test_each_bad_input_is_one_clear_error_line(runs, name):
    run = runs[name]
    assert run.returncode == 1, run.stderr
    line = _one_error(run.stderr)
    assert CASES[name][1] in line, line


def test_broken_weights_are_one_error_line_each(inputs, tmp_path):
    cases = files.broken_weights(inputs["weights"], tmp_path)
    procs = {name: subprocess.Popen([sys.executable, "-m", "difftted", "generate",
                                     *_argv(inputs, **{"--weights": str(folder)}), "--quiet"],
                                    cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, (folder, _, _) in cases.items()}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        _, file, what = cases[name]
        assert proc.returncode == 1, (name, err)
        line = _one_error(err)
        assert file in line and what in line, (name, line)


@pytest.mark.slow
def test_a_huge_photo_costs_about_what_a_full_hd_one_does(inputs, tmp_path):
    """10000x10000 against 1920x1080, whole generations of the tiny pipeline: peak RSS within 1.5x.

    ``--crop``: both videos are the model's square, so the photo's decoding is what differs (a
    full-photo video of a square photo is 1920x1920, of a 16:9 one 1920x1080: another cost)."""
    peaks = {}
    for name, (w, h) in {"full hd": (1920, 1080), "huge": (10000, 10000)}.items():
        photo = files.write_png(tmp_path / f"{name.replace(' ', '_')}.png", w, h)
        out = tmp_path / f"{name.replace(' ', '_')}.mp4"
        status, stdout, stderr, peaks[name] = run_cli(_argv(inputs, **{"--image": str(photo), "--out": str(out),
                                                                        "--steps": "1"}) + ["--crop"], tmp_path)
        assert status == 0 and out.is_file(), stderr
    print(f"peak RSS: full HD {peaks['full hd']:.0f} MB, 10000x10000 {peaks['huge']:.0f} MB")
    assert peaks["huge"] <= 1.5 * peaks["full hd"], peaks


@pytest.mark.slow
def test_an_hour_of_compressed_audio_is_refused_cheaply(inputs, tmp_path):
    """The app's check of one hour of m4a, in a child process: refused from the header, with less
    than 100 MB of memory growth (RSS before the check against the peak after it)."""
    m4a = files.write_long_m4a(tmp_path / "hour.m4a", minutes=60)
    code = ("import resource, sys\n"
            "import difftted.video\nfrom difftted import ui  # imported first: the server has them\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try:\n    ui.check_speech(sys.argv[1])\nexcept ValueError as err:\n    print('refused:', err)\n"
            "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "print('growth_mb', (after - before) / 1024)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(m4a)], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"refused: The speech lasts 36\d\d\.\d s; this demo takes at most 60 s", proc.stdout), proc.stdout
    growth = float(proc.stdout.split("growth_mb")[1])
    print(f"memory growth refusing one hour of m4a: {growth:.1f} MB")
    assert growth < 100, proc.stdout
