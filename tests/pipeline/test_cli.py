"""``python -m difftted generate`` in a real subprocess: bad input gives one ``error:`` line, a
non-zero exit and no traceback; good input gives an mp4. The processes run concurrently (each
spends most of its time importing), so the file stays fast."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", **extra)
    env.pop("DIFFTTED_WEIGHTS", None)
    return env


@pytest.fixture(scope="module")
def files(tmp_path_factory, astronaut_path, tone_path, tiny_pipeline_dir) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    (d / "notes.jpg").write_text("this is not a picture")
    (d / "notes.wav").write_text("this is not a sound")
    (d / "empty.wav").write_bytes(b"")
    soundfile.write(str(d / "silent.wav"), np.zeros(16000, np.float32), 16000)
    soundfile.write(str(d / "blip.wav"), np.full(200, 0.2, np.float32), 16000)  # 12 ms: not a frame
    (d / "a_file").write_text("")
    (d / "empty_weights").mkdir()
    (d / "folder.mp4").mkdir()
    return dict(dir=d, image=astronaut_path, audio=tone_path, weights=tiny_pipeline_dir)


CASES = {
    # name: (argument overrides, expected message)
    "missing image": ({"--image": "{dir}/nope.png"}, "--image file"),
    "not an image": ({"--image": "{dir}/notes.jpg"}, "not a readable image"),
    "missing audio": ({"--audio": "{dir}/nope.wav"}, "--audio file"),
    "not audio": ({"--audio": "{dir}/notes.wav"}, "not readable audio"),
    "empty audio file": ({"--audio": "{dir}/empty.wav"}, "empty"),
    "too short audio": ({"--audio": "{dir}/blip.wav"}, "is empty"),
    "silent audio": ({"--audio": "{dir}/silent.wav"}, "is silent"),
    "unwritable output": ({"--out": "{dir}/a_file/out.mp4"}, "cannot be created"),
    "output not mp4": ({"--out": "{dir}/out.gif"}, ".mp4"),
    "output is a folder": ({"--out": "{dir}/folder.mp4"}, "is a folder"),
    "missing weights": ({"--weights": "{dir}/empty_weights"}, "holds no DiffTED pipeline"),
    "no weights folder": ({"--weights": "{dir}/nowhere"}, "does not exist"),
    "hub offline": ({"--weights": "nobody/difftted-nothing"}, "HF_HUB_OFFLINE"),
    "bad steps": ({"--steps": "0"}, "--steps"),
    "bad part scale": ({"--head-scale": "-1"}, "--head-scale"),
    "part scale, detector weights": ({"--arms-scale": "1.5"}, "--arms-scale"),
    "bad interpolation": ({"--interpolation": "lanczos"}, "--interpolation"),
    "bad render precision": ({"--render-precision": "float16"}, "--render-precision"),
}


def _argv(files: dict[str, Path], overrides: dict[str, str]) -> list[str]:
    args = {"--image": str(files["image"]), "--audio": str(files["audio"]), "--out": str(files["dir"] / "ok.mp4"),
            "--weights": str(files["weights"])}
    args.update({k: v.format(dir=files["dir"]) for k, v in overrides.items()})
    return [sys.executable, "-m", "difftted", "generate", *[x for kv in args.items() for x in kv], "--quiet"]


#: Run as real processes (exit status, stderr, no traceback); every case also runs in-process below.
SUBPROCESS_CASES = ("missing image", "not audio", "silent audio", "unwritable output", "missing weights", "bad steps")


@pytest.fixture(scope="module")
def runs(files, speech_path) -> dict[str, subprocess.CompletedProcess]:
    procs = {name: subprocess.Popen(_argv(files, CASES[name][0]), env=_env(), cwd=files["dir"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in SUBPROCESS_CASES}
    good = {"--audio": str(speech_path), "--out": str(files["dir"] / "talk.mp4"), "--seed": "3", "--steps": "2"}
    procs["good"] = subprocess.Popen(_argv(files, good) + ["--crop"], env=_env(), cwd=files["dir"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_one_clear_error_in_a_process(runs, name):
    run, message = runs[name], CASES[name][1]
    assert run.returncode != 0, run.stdout
    assert "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:") or ": error:" in line]
    assert len(errors) == 1, run.stderr
    assert message in errors[0], errors[0]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_one_clear_error(files, name, capsys, monkeypatch):
    from difftted.__main__ import main

    monkeypatch.delenv("DIFFTTED_WEIGHTS", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(files["dir"] / "hub"))
    argv = _argv(files, CASES[name][0])[3:]  # after "python -m difftted"
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    err = capsys.readouterr().err
    assert status != 0
    errors = [line for line in err.splitlines() if line.startswith("error:") or ": error:" in line]
    assert len(errors) == 1 and CASES[name][1] in errors[0], err


def test_bad_input_is_refused_before_loading_weights(runs):
    # the image check comes before the weights: a missing photo is reported even with no weights
    assert "loaded" not in runs["missing image"].stderr and "rendering" not in runs["missing image"].stderr


def test_good_input_writes_the_video(runs, files):
    from tests.media import stream_codecs

    run = runs["good"]
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "wrote" in run.stdout and "seed 3" in run.stdout
    video = files["dir"] / "talk.mp4"
    assert stream_codecs(video) == {"video": "h264", "audio": "aac"}
    from tps.video import video_info

    info = video_info(video)
    # --crop: the square around the speaker at its own size (composition at the photo's resolution),
    # not the tiny model's 64x64
    assert info.width == info.height > 64 and info.width % 2 == 0


def test_a_real_bug_keeps_its_traceback():
    from difftted.__main__ import run_command

    def buggy(argv):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        run_command(buggy, [])


def test_user_error_is_one_line(capsys):
    from difftted.__main__ import run_command

    def bad(argv):
        raise ValueError("first line\n  second line")

    assert run_command(bad, []) == 1
    assert capsys.readouterr().err == "error: first line second line\n"


def test_part_scales_with_body_weights_write_the_video(files, body_pipeline_dir, speech_path, capsys):
    """--head/--mouth/--arms-scale reach the pipeline of a body-keypoint pipeline folder; 1 is
    accepted for detector weights too (the default)."""
    from difftted.__main__ import main

    out = files["dir"] / "parts.mp4"
    argv = _argv(files, {"--weights": str(body_pipeline_dir), "--audio": str(speech_path), "--out": str(out),
                         "--seed": "1", "--steps": "2"})[3:]
    assert main(argv + ["--crop", "--arms-scale", "1.5", "--mouth-scale", "0", "--head-scale", "0.5"]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    argv = _argv(files, {"--audio": str(speech_path), "--out": str(files["dir"] / "ones.mp4"), "--steps": "2"})[3:]
    assert main(argv + ["--crop", "--head-scale", "1", "--interpolation", "bicubic"]) == 0  # the earlier warp


def test_render_precision_reaches_the_pipeline(files, tone_path, monkeypatch, capsys):
    """--render-precision sets `DiffTEDPipeline.render_precision` before the call."""
    from difftted.__main__ import main
    from difftted.pipeline import DiffTEDPipeline

    seen = []
    original = DiffTEDPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append((self.render_precision, self.frame_renderer.bfloat16))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DiffTEDPipeline, "__call__", spy)
    for precision in ("float32", "bfloat16", "auto"):
        argv = _argv(files, {"--out": str(files["dir"] / f"{precision}.mp4"), "--steps": "2", "--seed": "0"})[3:]
        assert main(argv + ["--crop", "--render-precision", precision]) == 0
    assert seen == [("float32", False), ("bfloat16", True), ("auto", "auto")]
    assert capsys.readouterr().out.count("wrote") == 3


def test_part_masks_option_reaches_the_pipeline(files, body_pipeline_dir, speech_path, monkeypatch, capsys):
    """--no-part-masks turns the body weights' part masks off; --part-masks on detector weights
    is refused before anything loads, naming the option."""
    from difftted.__main__ import main
    from difftted.pipeline import DiffTEDPipeline

    seen = []
    original = DiffTEDPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append((self.part_masks, self.frame_renderer.parts is not None))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DiffTEDPipeline, "__call__", spy)
    argv = _argv(files, {"--weights": str(body_pipeline_dir), "--audio": str(speech_path), "--steps": "2",
                         "--out": str(files["dir"] / "masks.mp4"), "--seed": "0"})[3:]
    assert main(argv + ["--crop"]) == 0
    assert main(argv + ["--crop", "--no-part-masks"]) == 0
    assert seen == [(True, True), (False, False)]
    detector = _argv(files, {"--out": str(files["dir"] / "no.mp4"), "--steps": "2"})[3:]
    capsys.readouterr()
    assert main(detector + ["--part-masks"]) == 1
    assert "--part-masks needs weights with body keypoints" in capsys.readouterr().err
    assert len(seen) == 2


def test_mouth_interior_flag_reaches_the_pipeline(files, tone_path, monkeypatch, capsys):
    """--mouth-interior / --no-mouth-interior give True / False, no flag None (the pipeline's
    default: on for body keypoints); True with the bundled detector weights is an error naming it."""
    from difftted.__main__ import main
    from difftted.pipeline import DiffTEDPipeline

    seen = []
    original = DiffTEDPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append(kwargs["mouth_interior"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DiffTEDPipeline, "__call__", spy)
    for i, flag in enumerate(([], ["--no-mouth-interior"])):
        argv = _argv(files, {"--out": str(files["dir"] / f"mouth{i}.mp4"), "--steps": "2"})[3:]
        assert main(argv + ["--crop"] + flag) == 0
    assert main(_argv(files, {"--out": str(files["dir"] / "mouth2.mp4"), "--steps": "2"})[3:] + ["--mouth-interior"]) == 1
    assert seen == [None, False, True]
    assert "mouth_interior=True needs body keypoints" in capsys.readouterr().err
