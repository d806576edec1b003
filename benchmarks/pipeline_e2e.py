"""End-to-end speed of the default `DiffTEDPipeline` on real speech: today's path beside the new one.

    python benchmarks/pipeline_e2e.py --seconds 10 60 --threads 2
    python benchmarks/pipeline_e2e.py --seconds 3 --modes default --profile 8   # + a render profile

For each speech length and each mode, one full call (bundled weights in weights/, the photo
examples/astronaut.png, an mp4 written like the CLI does), timed step by step with timers
wrapped around the pipeline's own step methods (nothing in the pipeline changes):

- load: `DiffTEDPipeline.from_pretrained` (fresh for every run);
- audio: decoding the speech and the audio features;
- crop/landmarks: loading and fitting the photo and mediapipe's crop;
- prepare: the renderer's source keypoints (detector) and inpainting encoder, once per photo;
- sampling: the keypoint diffusion;
- render, compose: the renderer's chunks, then the composition into the photo
  (`FrameComposer`: the native path warps the photo at its resolution, the model path scales the
  render up and pastes it), both in the calling thread; compose includes the person mask;
- encoding: the rest of the write step, i.e. encoding time NOT hidden behind rendering (with
  the writer thread only its tail and the audio mux remain).

Modes: ``baseline`` reproduces the path of the previous release (the model's frames scaled up and
pasted, no writer thread, channels_last off, no batch-norm folding, 50 DDIM steps); ``default`` is
the pipeline as it now ships (composition at the photo's resolution, still background, writer
thread, and ``render_precision="auto"``: the inpainting network in bfloat16 where the CPU has
bfloat16 units); ``model`` is the default with the previous release's composition (float32), so
the difference between ``model`` and ``baseline`` frames must be 0 (equal-output changes only);
``float32`` is the default with the renderer in float32 on every CPU (the default before "auto");
``no_shift_add`` is the default with the occlusion heads as oneDNN convolutions (the default
before `Renderer.shift_add`; its frames differ from the default's by float rounding). Runs of a length
use the same seed and speech and are interleaved, so a burst of load hits them alike.
``--weights NAME=DIR ...`` runs every mode with each pipeline folder (e.g. the bundled weights
beside a renderer trained at another resolution; ``NAME=git:REV`` takes weights/ as committed at
REV, the previous release's weights for a side-by-side run); ratios are printed against the
first run of each length.

The speech is cut (repeated if needed) from ``--speech`` (default: the 64 s mocap recording in
../shared/data; any speech file works). Prints, never asserts a time: the machine may be shared.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import numpy as np  # noqa: E402
import torch  # noqa: E402

DEFAULT_SPEECH = REPO.parent / "shared" / "data" / "mocap" / "2_scott_0_1_1.wav"
STEPS = ("load", "audio", "crop/landmarks", "prepare", "sampling", "render", "compose", "encoding")
MODES = {
    "baseline": {"channels_last": False, "fold_batchnorm": False, "background_encoding": False, "steps": 50,
                 "composition": "model"},
    "default": {},  # the pipeline's own settings
    "model": {"channels_last": False, "fold_batchnorm": False, "background_encoding": True, "steps": None,
              "composition": "model"},
    # the default plus NHWC activations: measured, default only where it is faster
    "channels_last": {"channels_last": True, "fold_batchnorm": False, "background_encoding": True, "steps": None,
                      "composition": "native"},
    # the default with the renderer in float32 wherever it runs (the path before render_precision="auto")
    "float32": {"render_precision": "float32"},
    # the default with the occlusion heads as oneDNN convolutions (the path before Renderer.shift_add)
    "no_shift_add": {"shift_add": False},
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unavailable"


def cut_speech(path: Path, seconds: float, out: Path) -> Path:
    """The first ``seconds`` of the speech at ``path`` (repeated when shorter), as a wav."""
    import soundfile

    waveform, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = waveform.mean(axis=1)
    need = int(round(seconds * rate))
    reps = -(-need // len(mono))
    soundfile.write(str(out), np.tile(mono, reps)[:need], rate)
    return out


def weights_at_revision(revision: str, out: Path) -> Path:
    """The bundled ``weights/`` folder as committed at ``revision`` (e.g. the previous release's
    256x256 renderer), unpacked into ``out``; ``out`` without pipeline.json when it has none."""
    import io
    import subprocess
    import tarfile

    out.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", revision, "weights"],
                             capture_output=True, check=False)
    if archive.returncode == 0:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(out, filter="data")
    return out / "weights"


class StepTimer:
    """Seconds per step, accumulated by wrappers around the pipeline's methods."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def step(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def wrap(self, name: str, function):
        def timed(*args, **kwargs):
            with self.step(name):
                return function(*args, **kwargs)
        return timed

    def wrap_iter(self, name: str, function):
        """A generator function whose time inside ``next`` counts for ``name``."""
        def timed(*args, **kwargs):
            iterator = iter(function(*args, **kwargs))
            while True:
                with self.step(name):
                    try:
                        item = next(iterator)
                    except StopIteration:
                        return
                yield item
        return timed


def instrument(pipe, timer: StepTimer) -> contextlib.ExitStack:
    """Wrap the pipeline's steps (instance attributes and two module functions) with timers."""
    import difftted.pipeline.composition as composition_module
    import difftted.pipeline.pipeline as pipeline_module

    stack = contextlib.ExitStack()
    pipe.encode_audio = timer.wrap("audio", pipe.encode_audio)
    pipe.crop_person = timer.wrap("crop/landmarks", pipe.crop_person)
    pipe.sample_keypoints = timer.wrap("sampling", pipe.sample_keypoints)
    pipe.frame_renderer.prepare = timer.wrap("prepare", pipe.frame_renderer.prepare)
    pipe.prepare_composition = timer.wrap("compose", pipe.prepare_composition)
    pipe.render_frames = timer.wrap_iter("render", pipe.render_frames)
    pipe.write = timer.wrap("write", pipe.write)
    originals = {
        (pipeline_module, "load_speech"): "audio",
        (pipeline_module, "load_image"): "crop/landmarks",
        (pipeline_module, "fit_photo"): "crop/landmarks",
    }
    for (module, attr), name in originals.items():
        original = getattr(module, attr)
        setattr(module, attr, timer.wrap(name, original))
        stack.callback(setattr, module, attr, original)
    compose_call = composition_module.FrameComposer.__call__
    composition_module.FrameComposer.__call__ = timer.wrap("compose", compose_call)
    stack.callback(setattr, composition_module.FrameComposer, "__call__", compose_call)
    return stack


def run_once(mode: str, photo: Path, speech: Path, out: Path, seed: int,
             weights: Path = REPO / "weights") -> tuple[dict, np.ndarray, float]:
    """One pipeline call in ``mode`` with the pipeline folder ``weights``:
    (seconds per step, frames uint8 [T, H, W, 3], video seconds)."""
    from difftted.pipeline import DiffTEDPipeline
    from tps.render import Renderer

    timer = StepTimer()
    with timer.step("load"):
        pipe = DiffTEDPipeline.from_pretrained(weights)
    pipe.set_progress_bar_config(disable=True)
    settings = MODES[mode]
    steps = settings.get("steps")
    if "render_precision" in settings:
        pipe.render_precision = settings["render_precision"]
    elif "shift_add" in settings:
        pipe.frame_renderer.shift_add = settings["shift_add"]
    elif settings:
        pipe.frame_renderer = Renderer(pipe.renderer, channels_last=settings["channels_last"],
                                       fold_batchnorm=settings["fold_batchnorm"])
        pipe.background_encoding = settings["background_encoding"]
    start = time.perf_counter()
    with instrument(pipe, timer):
        result = pipe(str(photo), str(speech), generator=torch.Generator().manual_seed(seed),
                      num_inference_steps=steps, output_path=out, return_frames=True,
                      composition=settings.get("composition", "native"))
    total = time.perf_counter() - start
    seconds = dict(timer.seconds)
    write = seconds.pop("write", 0.0)
    seconds["encoding"] = write - seconds.get("render", 0.0) - seconds.get("compose", 0.0)
    seconds["total"] = total + seconds["load"]
    return seconds, result.frames, len(result.frames) / result.fps


def profile_render(frames: int, top: int = 15) -> None:
    """torch.profiler over the default renderer on ``frames`` frames of the bundled weights."""
    from torch.profiler import ProfilerActivity, profile

    from difftted.pipeline.person import crop_to_tensor, find_crop, load_image
    from tps import TPSMotionModel
    from tps.render import Renderer

    model = TPSMotionModel.from_pretrained(REPO / "weights" / "renderer")
    photo = load_image(REPO / "examples" / "astronaut.png")
    source = crop_to_tensor(photo, find_crop(photo).box, tuple(model.config.image_size))
    renderer = Renderer(model)
    prepared = renderer.prepare(source)
    t = torch.linspace(0, 1, frames)[:, None, None]
    kp = (prepared.kp_source + 0.03 * torch.sin(6.283 * t + torch.arange(100).view(1, 50, 2))).clamp(-1, 1)
    renderer.render(prepared, kp[:2], progress=False)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        renderer.render(prepared, kp, progress=False)
    print(f"\nrender profile, {frames} frames (self CPU time; ms per frame):")
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    for e in events[:top]:
        print(f"  {e.key:34s} {e.self_cpu_time_total / 1000 / frames:8.2f} ms  {100 * e.self_cpu_time_total / total:5.1f}%"
              f"  ({e.count // frames} calls/frame)")


def print_table(rows: list[dict]) -> None:
    cols = ["speech s", "mode", "frames", *STEPS, "total", "render ms/frame", "s per s (call)", "s per s (+load)"]
    print("\n| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [f"{r['speech_s']:g}", r["mode"], str(r["frames"])]
        cells += [f"{r['seconds'].get(s, 0.0):.1f}" for s in STEPS]
        cells += [f"{r['seconds']['total']:.1f}", f"{r['ms_frame']:.0f}", f"{r['rtf_call']:.2f}", f"{r['rtf']:.2f}"]
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["baseline", "model", "default"])
    parser.add_argument("--baseline", action="store_true", help="only today's path (same as --modes baseline)")
    parser.add_argument("--weights", nargs="+", default=[f"bundled={REPO / 'weights'}"], metavar="NAME=DIR",
                        help="pipeline folders to run, each as NAME=DIR or NAME=git:REV (weights/ as committed at "
                             "REV, e.g. the previous release); default: the bundled weights/. Every mode runs "
                             "with every folder")
    parser.add_argument("--speech", type=Path, default=DEFAULT_SPEECH)
    parser.add_argument("--photo", type=Path, default=REPO / "examples" / "astronaut.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", type=int, default=0, metavar="FRAMES", help="also profile the render")
    args = parser.parse_args(argv)
    if args.threads < 1 or any(s <= 0 for s in args.seconds):
        parser.error("--threads and --seconds must be positive")
    if not args.speech.is_file():
        parser.error(f"--speech {str(args.speech)!r} does not exist (pass any speech file)")
    modes = ["baseline"] if args.baseline else args.modes
    runs_of = []
    torch.set_num_threads(args.threads)
    from tps.render import native_bfloat16

    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs, bfloat16 units: "
          f"{'yes' if native_bfloat16('cpu') else 'no'}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average before: {load_average()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pipeline_e2e_") as tmp:
        weights = {}
        for item in args.weights:
            name, sep, folder = item.partition("=")
            if sep and folder.startswith("git:"):
                folder = str(weights_at_revision(folder[4:], Path(tmp) / f"weights_{name}"))
            if not sep or not name or not (Path(folder) / "pipeline.json").is_file():
                parser.error(f"--weights {item!r} must be NAME=DIR or NAME=git:REV, DIR a pipeline folder "
                             "(pipeline.json inside), REV a commit of this repository with weights/")
            weights[name] = Path(folder)
        runs_of = [(mode, name) for name in weights for mode in modes]
        for seconds in args.seconds:
            speech = cut_speech(args.speech, seconds, Path(tmp) / f"speech_{seconds:g}.wav")
            frames = {}
            for mode, name in runs_of:
                label = mode if len(weights) == 1 else f"{mode}@{name}"
                print(f"{seconds:g} s of speech, {label} ... (load {load_average()})", flush=True)
                timing, frames[label], video_s = run_once(mode, args.photo, speech, Path(tmp) / f"{mode}.mp4",
                                                          args.seed, weights[name])
                count = len(frames[label])
                rows.append({"speech_s": seconds, "mode": label, "frames": count, "seconds": timing,
                             "ms_frame": 1000 * timing["render"] / count, "rtf": timing["total"] / video_s,
                             "rtf_call": (timing["total"] - timing["load"]) / video_s})
            first = next(iter(frames))
            for mode in list(frames)[1:]:
                a, b = frames[first].astype(np.int16), frames[mode].astype(np.int16)
                print(f"  frames of {first} vs {mode}: largest uint8 difference {int(np.abs(a - b).max())}, "
                      f"{int((a != b).sum())} of {a.size} values differ", flush=True)
    print(f"load average after: {load_average()}")
    print_table(rows)
    if len(rows) > len(args.seconds):  # ratios to the first run of each length (today's path when listed first)
        for seconds in args.seconds:
            runs = [r for r in rows if r["speech_s"] == seconds]
            ref = runs[0]
            for run in runs[1:]:
                print(f"{seconds:g} s, {ref['mode']} / {run['mode']}: total "
                      f"{ref['seconds']['total'] / run['seconds']['total']:.2f}x, render "
                      f"{ref['ms_frame'] / run['ms_frame']:.2f}x")
    if args.profile:
        profile_render(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
