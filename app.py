"""DiffTED demo: one photo + a speech recording -> a TED-style talking video (a Gradio app).

    python app.py                          # weights from $DIFFTTED_WEIGHTS, else weights/
    python app.py --weights DIR_OR_HUB_ID --port 7860

``build_demo(pipeline)`` returns the ``gr.Blocks`` (tests and other apps call it); importing this
file does no work. The logic behind the page is `difftted.interfaces.ui` (plain Python, tested without a
server); this file is only layout, wiring and the conversion of its ``ValueError`` into the
message the visitor sees (``gr.Error``).

Space-ready: nothing reaches the network at start (``HF_HUB_OFFLINE`` works once the weights are
local), the weights load once, requests wait in a bounded queue and run one at a time by default,
the speech is capped at ``--max-audio-seconds``, every request works in its own temporary folder
that is removed as soon as Gradio has taken its copies of the outputs, and Gradio's own copies are
removed after an hour (``delete_cache``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from difftted.interfaces import ui

logger = logging.getLogger("difftted.app")

if TYPE_CHECKING:
    from difftted.pipeline import DiffTEDPipeline

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
TITLE = "DiffTED: a talking video from one photo and speech"
#: Requests waiting beyond this are refused with "queue full" rather than waiting for minutes.
QUEUE_SIZE = 16
#: Generations running at once (one model, one device: more would only share it).
CONCURRENCY_LIMIT = 1
#: Every 30 min, Gradio removes the uploads and outputs it cached more than an hour ago.
DELETE_CACHE = (1800, 3600)
MAX_UPLOAD = "50mb"
STEP_RANGE = (1, 200)
GUIDANCE_RANGE = (0.0, 5.0)

INTRO = """\
# DiffTED: a talking video from one photo and speech
Upload a photo of a speaker (upper body, facing the camera) and a speech recording. A diffusion
model turns the speech into the motion of 50 keypoints; a Thin-Plate-Spline motion model warps
and inpaints the photo along them; the frames become an mp4 with your audio.
"""
DRIVING_INTRO = """\
Animate a photo with the motion of a driving video (the Thin-Plate-Spline motion model alone, as
in its official demo): the keypoints of every driving frame move the photo.
"""


class _Handlers:
    """The page's event handlers around one pipeline: ``ValueError`` -> ``gr.Error``, and a
    temporary folder per request under ``work_root``.

    Both are generators so the folder outlives the return: Gradio copies the outputs into its
    cache when the value is yielded, and the folder goes when the generator resumes and ends
    (or raises)."""

    def __init__(self, pipeline: "DiffTEDPipeline", work_root: Path, max_audio_seconds: float) -> None:
        self.pipeline, self.work_root, self.max_audio_seconds = pipeline, work_root, max_audio_seconds

    def generate(self, image: str | None, audio: str | None, steps: float, guidance: float, seed: float,
                 randomize: bool, motion: float, framing: str, head: float = 1.0, mouth: float = 1.0,
                 arms: float = 1.0, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> Iterator[tuple[Any, ...]]:
        settings = ui.GenerationSettings(num_inference_steps=steps, guidance_scale=guidance, seed=seed,
                                         randomize_seed=randomize, motion_scale=motion, output=framing,
                                         head_scale=head, mouth_scale=mouth, arms_scale=arms)
        with tempfile.TemporaryDirectory(prefix="request-", dir=self.work_root) as workdir:
            try:
                result = ui.generate(self.pipeline, image, audio, settings, workdir,
                                     max_audio_seconds=self.max_audio_seconds)
            except (ValueError, FileNotFoundError) as err:
                raise _refused("generate", err) from err
            yield str(result.video), str(result.keypoint_video), result.figure, result.seed

    def animate(self, image: str | None, driving: str | None, mode: str,
                progress: gr.Progress = gr.Progress(track_tqdm=True)) -> Iterator[str]:
        with tempfile.TemporaryDirectory(prefix="request-", dir=self.work_root) as workdir:
            try:
                video = ui.animate(self.pipeline, image, driving, workdir, mode=mode,
                                   max_seconds=self.max_audio_seconds)
            except (ValueError, FileNotFoundError) as err:
                raise _refused("animate", err) from err
            yield str(video)


def _refused(endpoint: str, err: BaseException) -> gr.Error:
    """A visitor's bad input: one log line on the server (no traceback), the pipeline's own
    message on the page (messages name files by their upload name, never by a server path)."""
    message = str(err)
    logger.info("/%s refused: %s", endpoint, message)
    return gr.Error(message, print_exception=False)


class PhotoInput(gr.Image):
    """`gr.Image` that hands the uploaded file's path over without opening it.

    Gradio's own preprocessing opens every photo with Pillow, so an unreadable file, an SVG or a
    decompression bomb failed there with its generic "Could not preprocess input" and a server
    traceback. Here the file goes unopened to `difftted.ui.check_photo`, which reads its header,
    refuses it with a clear message or decodes it already reduced. The upload is still checked
    to lie in Gradio's cache before this runs; the page shows the usual image component."""

    def get_block_name(self) -> str:
        return "image"

    def preprocess(self, payload: Any) -> str | None:
        if payload is None or (payload.url or "").startswith("data:"):
            return super().preprocess(payload)  # a pasted image: Gradio writes it to a file
        return payload.path


def build_demo(pipeline: "DiffTEDPipeline", *, max_audio_seconds: float = ui.MAX_AUDIO_SECONDS,
               queue_size: int = QUEUE_SIZE, concurrency_limit: int = CONCURRENCY_LIMIT,
               work_root: str | Path | None = None, examples_dir: Path = EXAMPLES_DIR) -> gr.Blocks:
    """The demo's page around a loaded ``pipeline``, with its queue set up; not launched.

    Args:
        pipeline: a `DiffTEDPipeline` (its defaults fill the settings).
        max_audio_seconds: longest speech / driving video accepted.
        queue_size / concurrency_limit: the bounded queue (see `QUEUE_SIZE`).
        work_root: where per-request folders are made (default: a fresh temporary folder,
            removed with the demo).
        examples_dir: holds ``astronaut.png``, ``speech.wav`` and ``sway.mp4``; missing files
            just leave the examples out.
    """
    owned_root = work_root is None
    work_root = Path(tempfile.mkdtemp(prefix="difftted-app-") if owned_root else work_root)
    work_root.mkdir(parents=True, exist_ok=True)
    handlers = _Handlers(pipeline, work_root, max_audio_seconds)
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(INTRO)
        with gr.Tab("Photo + speech"):
            _speech_tab(pipeline, handlers.generate, max_audio_seconds, examples_dir)
        with gr.Tab("Photo + driving video"):
            _driving_tab(handlers.animate, max_audio_seconds, examples_dir)
    demo.queue(max_size=queue_size, default_concurrency_limit=concurrency_limit)
    if owned_root:
        weakref.finalize(demo, shutil.rmtree, work_root, ignore_errors=True)
    return demo


def _speech_tab(pipeline: "DiffTEDPipeline", generate: Any, max_audio_seconds: float, examples_dir: Path) -> None:
    """Photo + speech in, the three views out; the Generate button is the ``/generate`` endpoint."""
    with gr.Row():
        with gr.Column(scale=1):
            image = PhotoInput(label="Photo", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                               height=320, elem_id="photo")
            audio = gr.Audio(label=f"Speech (up to {max_audio_seconds:g} s)", type="filepath", format=None,
                             sources=["upload", "microphone"], elem_id="speech")
            with gr.Accordion("Settings", open=False):
                steps = gr.Slider(*STEP_RANGE, value=pipeline.num_inference_steps, step=1,
                                  label="Diffusion steps", info="more: slower, often smoother")
                guidance = gr.Slider(*GUIDANCE_RANGE, value=pipeline.guidance_scale, step=0.05,
                                     label="Guidance scale", info="how strongly the motion follows the speech")
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, minimum=0, maximum=ui.SEED_MAX, label="Seed",
                                     info="the seed used is shown here")
                    randomize = gr.Checkbox(value=True, label="Randomise seed")
                motion = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Motion intensity",
                                   info="0 = still photo, 1 = as generated, 2 = exaggerated")
                parts = _part_sliders(pipeline)
                framing = gr.Radio([("Full photo", "full"), ("Crop around the speaker", "crop")], value="full",
                                   label="Output")
            run = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Column(scale=1):
            video = gr.Video(label="Talking video", elem_id="video")
            keypoint_video = gr.Video(label="Generated keypoints over the frames", elem_id="keypoints")
            plot = gr.Plot(label="Audio onsets vs motion beats", elem_id="beats")
    examples = _existing([examples_dir / "astronaut.png", examples_dir / "speech.wav"])
    if examples:
        gr.Examples([examples], inputs=[image, audio], cache_examples=False,
                    label="Example (public-domain photo, synthesised speech)")
    run.click(generate, inputs=[image, audio, steps, guidance, seed, randomize, motion, framing, *parts],
              outputs=[video, keypoint_video, plot, seed], api_name="generate")


def _part_sliders(pipeline: "DiffTEDPipeline") -> list[gr.Slider]:
    """Head, mouth and arms intensity (the pipeline's ``part_scales``): they move only with weights
    whose keypoints sit on body parts (pipeline.json ``"keypoints": "body"``), and start at the
    weights' own defaults (each slider reaches at least twice its default: weights/v2's mouth
    starts at 3)."""
    body = getattr(pipeline, "keypoint_source", "detector") == "body"
    info = ("0 = still, 1 = as generated, 2 = exaggerated" if body else
            "needs weights with body keypoints; these use the learned detector")
    with gr.Row():
        defaults = getattr(pipeline, "part_scales", {})
        return [gr.Slider(0.0, max(2.0, 2 * defaults.get(part, 1.0)), value=defaults.get(part, 1.0), step=0.05,
                          label=ui.PART_LABELS[part], info=info, interactive=body, elem_id=f"{part}-scale")
                for part in ("head", "mouth", "arms")]


def _driving_tab(animate: Any, max_seconds: float, examples_dir: Path) -> None:
    """Photo + driving video in, the animated photo out; the ``/animate`` endpoint."""
    gr.Markdown(DRIVING_INTRO)
    with gr.Row():
        with gr.Column(scale=1):
            image = PhotoInput(label="Photo", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                               height=320)
            driving = gr.Video(label=f"Driving video (up to {max_seconds:g} s)", sources=["upload"], format=None)
            mode = gr.Radio([("Relative motion (keeps the photo's shape)", "relative"),
                             ("Standard (copies the driving pose)", "standard")], value="relative",
                            label="Keypoint mode")
            run = gr.Button("Animate", variant="primary")
        with gr.Column(scale=1):
            video = gr.Video(label="Animated photo")
    examples = _existing([examples_dir / "astronaut.png", examples_dir / "sway.mp4"])
    if examples:
        gr.Examples([examples], inputs=[image, driving], cache_examples=False, label="Example")
    run.click(animate, inputs=[image, driving, mode], outputs=[video], api_name="animate")


def _existing(paths: list[Path]) -> list[str]:
    """The paths as strings when all exist, else [] (a fresh clone may lack the examples)."""
    return [str(p) for p in paths] if all(p.is_file() for p in paths) else []


def launch_options() -> dict[str, Any]:
    """What `gr.Blocks.launch` takes besides the address (Gradio 6: theme and css live here)."""
    return dict(theme=gr.themes.Soft(), show_error=True, max_file_size=MAX_UPLOAD,
                allowed_paths=[str(EXAMPLES_DIR)], footer_links=["api", "gradio"])


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from err
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None,
                        help="pipeline folder or Hugging Face Hub repo id (default: $DIFFTTED_WEIGHTS, then weights/)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--host", default=None,
                        help="address to serve on (default: $GRADIO_SERVER_NAME, else 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT, else 7860)")
    parser.add_argument("--max-audio-seconds", type=_positive(float), default=ui.MAX_AUDIO_SECONDS,
                        help=f"longest speech accepted (default {ui.MAX_AUDIO_SECONDS:g})")
    parser.add_argument("--queue-size", type=_positive(int), default=QUEUE_SIZE,
                        help=f"requests allowed to wait (default {QUEUE_SIZE})")
    parser.add_argument("--concurrency", type=_positive(int), default=CONCURRENCY_LIMIT,
                        help=f"requests running at once (default {CONCURRENCY_LIMIT})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Load the weights once, build the page and serve it until interrupted (Ctrl-C or SIGTERM),
    then remove the app's work folder and its own Gradio cache."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # SIGTERM ends like Ctrl-C: through the cleanup below. Both also arm a watchdog: Gradio's close
    # waits for open connections (a client's event stream), which can keep it from returning.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    # Gradio caches uploads and outputs under GRADIO_TEMP_DIR: a folder of this process's own,
    # inside the one asked for (default: the system's temporary folder), removed at shutdown.
    shared = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")
    shared.mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix="difftted-gradio-", dir=shared))
    os.environ["GRADIO_TEMP_DIR"] = str(cache)
    work_root = Path(tempfile.mkdtemp(prefix="difftted-app-"))

    def cleanup() -> None:
        for folder in (work_root, cache):
            shutil.rmtree(folder, ignore_errors=True)
        # the one folder Gradio makes at import, before the cache above was chosen: removed when empty
        with contextlib.suppress(OSError):
            (shared / "vibe_edit_history").rmdir()
        logger.info("removed %s and %s", work_root, cache)

    _SHUTDOWN["cleanup"] = cleanup
    try:
        pipeline = _load_pipeline(args.weights, args.device)
        if pipeline is None:
            return 2
        demo = build_demo(pipeline, max_audio_seconds=args.max_audio_seconds, queue_size=args.queue_size,
                          concurrency_limit=args.concurrency, work_root=work_root)
        demo.launch(server_name=args.host, server_port=args.port, **launch_options())
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        cleanup()


#: What an interrupted app must still do if Gradio's shutdown does not return (set by `main`).
_SHUTDOWN: dict[str, Any] = {}
#: Seconds Gradio gets to close its server after Ctrl-C or SIGTERM before the process ends anyway.
SHUTDOWN_GRACE_SECONDS = 10.0


def _interrupt(signum: int, frame: Any) -> None:
    """Ctrl-C and SIGTERM: a KeyboardInterrupt through Gradio's own shutdown and `main`'s cleanup,
    and a watchdog that, should that not finish within `SHUTDOWN_GRACE_SECONDS` (an open client
    connection keeps the server waiting), cleans up and ends the process with status 130."""
    if "watchdog" not in _SHUTDOWN:
        import threading

        def force_exit() -> None:
            time.sleep(SHUTDOWN_GRACE_SECONDS)
            with contextlib.suppress(Exception):
                _SHUTDOWN.get("cleanup", lambda: None)()
            logging.shutdown()
            os._exit(130)

        _SHUTDOWN["watchdog"] = threading.Thread(target=force_exit, name="shutdown-watchdog", daemon=True)
        _SHUTDOWN["watchdog"].start()
    raise KeyboardInterrupt(f"signal {signum}")


def _load_pipeline(weights: str | None, device: str | None) -> "DiffTEDPipeline | None":
    """The pipeline, or None after one ``error:`` line saying what is wrong with the weights."""
    import torch

    from difftted.pipeline import DiffTEDPipeline
    from difftted.pipeline.weights import WeightsNotFoundError, resolve_weights

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return DiffTEDPipeline.from_pretrained(resolve_weights(weights), device=device)
    except WeightsNotFoundError as err:
        print(f"error: cannot start the demo without weights. {' '.join(str(err).split())}", file=sys.stderr)
    except ValueError as err:  # a broken or mismatched pipeline folder (see weights/README.md)
        print(f"error: cannot load the weights: {' '.join(str(err).split())}", file=sys.stderr)
    return None


if __name__ == "__main__":
    sys.exit(main())
