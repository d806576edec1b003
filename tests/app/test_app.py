"""app.py: the page's structure, no work at import, startup without weights, and end-to-end calls
of the named endpoint through gradio_client against the app served on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline import bad_input_files

# gradio's queue triggers pandas deprecation warnings that say nothing about this project
pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]

REPO_ROOT = Path(__file__).resolve().parents[2]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DIFFTTED_WEIGHTS"}
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------- no server
def test_import_does_no_work():
    """Importing app.py parses no arguments and loads neither torch nor the pipeline."""
    code = ("import sys; sys.argv = ['app.py', '--not-an-option']; import app; "
            "loaded = [m for m in ('torch', 'difftted.pipeline', 'difftted.pipeline.weights') if m in sys.modules]; "
            "print('loaded:', loaded)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=_clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "loaded: []" in proc.stdout


def test_missing_weights_exit_with_a_message_not_a_traceback(tmp_path):
    empty = tmp_path / "no_weights"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "app.py", "--weights", str(empty)], cwd=REPO_ROOT,
                          env=_clean_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2
    assert "error: cannot start the demo without weights" in proc.stderr
    assert "holds no DiffTED pipeline" in proc.stderr and str(empty) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_build_demo_layout(app_pipeline, tmp_path):
    import gradio as gr

    import app

    demo = app.build_demo(app_pipeline, work_root=tmp_path)
    assert isinstance(demo, gr.Blocks)
    config = demo.get_config_file()
    api_names = {dep.get("api_name") for dep in config["dependencies"]}
    assert {"generate", "animate"} <= api_names
    labels = {c["props"].get("label") for c in config["components"]}
    assert {"Photo", "Generated keypoints over the frames", "Audio onsets vs motion beats", "Seed",
            "Randomise seed", "Diffusion steps", "Guidance scale", "Motion intensity", "Output"} <= labels
    assert any(str(label).startswith("Speech") for label in labels)
    buttons = {c["props"].get("value") for c in config["components"] if c["type"] == "button"}
    assert {"Generate", "Animate"} <= buttons
    # the settings start from the pipeline's own defaults
    by_label = {c["props"].get("label"): c["props"] for c in config["components"]}
    assert by_label["Diffusion steps"]["value"] == app_pipeline.num_inference_steps
    assert by_label["Guidance scale"]["value"] == pytest.approx(app_pipeline.guidance_scale)
    # a bounded queue with a concurrency limit
    assert demo._queue.max_size == app.QUEUE_SIZE
    assert demo._queue.default_concurrency_limit == app.CONCURRENCY_LIMIT
    assert demo.delete_cache == app.DELETE_CACHE


def test_examples_exist_and_are_small():
    import soundfile
    from PIL import Image

    photo = Image.open(REPO_ROOT / "examples" / "astronaut.png")
    assert photo.size == (512, 512)
    info = soundfile.info(str(REPO_ROOT / "examples" / "speech.wav"))
    assert (info.samplerate, info.channels) == (16000, 1) and 2.0 < info.duration < 10.0
    assert (REPO_ROOT / "examples" / "sway.mp4").stat().st_size < 500_000


# ------------------------------------------------------------------------------------ served
def _client(served_demo, tmp_path):
    from gradio_client import Client

    return Client(served_demo.url, verbose=False, download_files=str(tmp_path), analytics_enabled=False)


def _generate(client, photo, speech, *, seed=3, randomize=False, framing="crop", submit=False):
    from gradio_client import handle_file

    call = client.submit if submit else client.predict
    return call(
        None if photo is None else handle_file(str(photo)),
        None if speech is None else handle_file(str(speech)),
        2, 1.5, seed, randomize, 1.0, framing,
        api_name="/generate",
    )


def _video_path(value) -> Path:
    return Path(value["video"] if isinstance(value, dict) else value)


@pytest.mark.slow
def test_generate_endpoint_returns_an_mp4_with_video_and_audio(served_demo, small_photo, short_speech, tmp_path):
    from tests.media import stream_codecs
    from tps.video import video_info

    client = _client(served_demo, tmp_path)
    video, keypoints, plot, seed = _generate(client, small_photo, short_speech, seed=11)
    assert seed == 11
    assert plot is not None
    for value in (video, keypoints):
        path = _video_path(value)
        assert path.suffix == ".mp4" and path.is_file()
        assert stream_codecs(path) == {"video": "h264", "audio": "aac"}
        assert video_info(path).duration == pytest.approx(1.0, abs=0.1)
    # every request folder is gone once the files were handed over
    assert list(served_demo.work_root.iterdir()) == []

    _, _, _, drawn = _generate(client, small_photo, short_speech, seed=11, randomize=True, framing="full")
    assert isinstance(drawn, int) and 0 <= drawn < 2**31


@pytest.mark.slow
def test_progress_follows_the_pipelines_bars(served_demo, small_photo, short_speech, tmp_path):
    """gr.Progress(track_tqdm=True) relays the pipeline's tqdm bars to the page."""
    job = _generate(_client(served_demo, tmp_path), small_photo, short_speech, submit=True)
    job.result(timeout=300)
    descriptions = set()
    while not job.communicator.updates.empty():
        update = job.communicator.updates.get_nowait()
        for unit in getattr(update, "progress_data", None) or []:
            descriptions.add(unit.desc)
    # Gradio samples the bars every 10 ms and sends only the latest state, so a short bar (the
    # 2-step sampling of the tiny model) can slip between samples; rendering 25 frames cannot.
    assert descriptions & {"sampling motion", "rendering"}, descriptions


@pytest.mark.slow
def test_animate_endpoint(served_demo, small_photo, short_driving, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    from tps.video import video_info

    client = _client(served_demo, tmp_path)
    video = client.predict(handle_file(str(small_photo)), handle_file(str(short_driving)), "relative",
                           api_name="/animate")
    assert video_info(_video_path(video)).duration == pytest.approx(video_info(short_driving).duration, abs=0.05)
    with pytest.raises(AppError, match="No driving video"):
        client.predict(handle_file(str(small_photo)), None, "relative", api_name="/animate")
    assert list(served_demo.work_root.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("photo", "speech", "message"),
    [
        (None, "good", "No photo"),
        ("good", None, "No speech"),
        ("good", "text", "is not readable audio"),
        ("good", "silence", "is silent"),
        ("good", "long", "this demo takes at most 3 s"),
    ],
    ids=["no-photo", "no-audio", "text-as-wav", "silence", "too-long"],
)
def test_bad_inputs_show_a_message_and_the_app_keeps_serving(served_demo, small_photo, short_speech, bad_inputs,
                                                             tmp_path, photo, speech, message):
    from gradio_client.exceptions import AppError

    files = {"good": short_speech, None: None, **bad_inputs}
    client = _client(served_demo, tmp_path)
    with pytest.raises(AppError, match=message):
        _generate(client, small_photo if photo else None, files[speech])
    assert list(served_demo.work_root.iterdir()) == []
    video, *_ = _generate(client, small_photo, short_speech)
    assert _video_path(video).is_file()


# ----------------------------------------------------------------------- the bad-input catalogue
@pytest.fixture(scope="module")
def bad_photos(tmp_path_factory, small_photo) -> dict[str, Path]:
    from PIL import Image

    files = bad_input_files
    folder = tmp_path_factory.mktemp("bad_photos")
    jpeg = folder / "good.jpg"
    Image.open(small_photo).convert("RGB").save(jpeg, quality=90)
    made = files.unreadable_photos(folder / "photos", jpeg)
    made["bomb"] = files.write_bomb_png(folder / "bomb.png", 20000)
    return made


@pytest.mark.slow
@pytest.mark.parametrize(("case", "message"), [
    ("empty", "is not a readable image"), ("text", "is not a readable image"), ("svg", "is not a readable image"),
    ("pdf", "is not a readable image"), ("truncated jpeg", "is not a readable image"),
    ("bomb", "photos are limited to 150 megapixels"),
])
def test_unreadable_photos_get_the_pipelines_message_without_a_path(served_demo, bad_photos, short_speech,
                                                                    tmp_path, case, message, capfd):
    from gradio_client.exceptions import AppError

    client = _client(served_demo, tmp_path)
    with pytest.raises(AppError, match=message) as info:
        _generate(client, bad_photos[case], short_speech)
    text = str(info.value)
    assert text.startswith("The photo '") and bad_photos[case].name in text
    assert "/" not in text.split(message)[0], text  # the file by its name, no server folder
    assert "Traceback" not in capfd.readouterr().err  # one log line on the server, no traceback


@pytest.mark.slow
def test_an_hour_of_m4a_is_refused_from_its_header(served_demo, small_photo, tmp_path):
    from gradio_client.exceptions import AppError

    m4a = bad_input_files.write_long_m4a(tmp_path / "hour.m4a", minutes=60)
    with pytest.raises(AppError, match=r"The speech lasts 36\d\d\.\d s; this demo takes at most 3 s"):
        _generate(_client(served_demo, tmp_path), small_photo, m4a)


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_shutdown_removes_the_work_folder_and_the_gradio_cache(how, tiny_weights_dir, small_photo, short_speech,
                                                               tmp_path):
    """app.py served as a process, one request answered, then stopped: its folders are gone."""
    import socket

    from gradio_client import Client

    temp, cache = tmp_path / "tmp", tmp_path / "gradio"
    temp.mkdir(), cache.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = _clean_env(TMPDIR=str(temp), GRADIO_TEMP_DIR=str(cache), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
                     GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, "app.py", "--weights", str(tiny_weights_dir), "--port", str(port)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = _wait_for(lambda: Client(f"http://127.0.0.1:{port}/", verbose=False,
                                          download_files=str(tmp_path), analytics_enabled=False), proc)
        _generate(client, small_photo, short_speech)
        assert any(p.name.startswith("difftted-gradio-") for p in cache.iterdir()), list(cache.iterdir())
        assert any(p.name.startswith("difftted-app-") for p in temp.iterdir())
    finally:
        proc.send_signal(how)
        output, _ = proc.communicate(timeout=120)
    assert list(cache.iterdir()) == [], (list(cache.rglob("*")), output)
    assert not [p for p in temp.iterdir() if p.name.startswith("difftted-")], output
    assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def tiny_weights_dir(app_pipeline, tmp_path_factory) -> Path:
    return app_pipeline.save_pretrained(tmp_path_factory.mktemp("tiny_weights"))


def _wait_for(connect, proc):
    """``connect()`` once the served app answers (polling; no time is asserted)."""
    import time

    for _ in range(600):
        if proc.poll() is not None:
            raise AssertionError(f"app.py ended: {proc.stdout.read()}")
        try:
            return connect()
        except Exception:  # noqa: BLE001 - not listening yet
            time.sleep(0.5)
    raise AssertionError("app.py never answered")


@pytest.mark.slow
def test_broken_weights_stop_the_app_with_one_error_line(tiny_weights_dir, tmp_path):
    """Every broken weights folder of the catalogue: app.py exits at start with one `error:` line
    naming the file and what is wrong (the processes run at once; each mostly imports)."""
    cases = bad_input_files.broken_weights(tiny_weights_dir, tmp_path)
    procs = {name: subprocess.Popen([sys.executable, "app.py", "--weights", str(folder)], cwd=REPO_ROOT,
                                    env=_clean_env(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, (folder, _, _) in cases.items()}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        _, file, what = cases[name]
        assert proc.returncode == 2, (name, err)
        assert "Traceback" not in err, err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and file in errors[0] and what in errors[0], (name, err)


def test_interrupt_ends_the_process_even_if_shutdown_hangs():
    """Ctrl-C / SIGTERM arm a watchdog: if the process does not end by itself (here a thread that
    never finishes, as an open client connection keeps Gradio's server waiting), the cleanup still
    runs and the process ends with status 130 after the grace period."""
    code = ("import threading, time, app\n"
            "app.SHUTDOWN_GRACE_SECONDS = 0.5\n"
            "app._SHUTDOWN['cleanup'] = lambda: print('cleaned up', flush=True)\n"
            "threading.Thread(target=time.sleep, args=(600,)).start()\n"
            "try:\n    app._interrupt(15, None)\nexcept KeyboardInterrupt:\n    print('interrupted', flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=_clean_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 130, (proc.stdout, proc.stderr)
    assert proc.stdout.split() == ["interrupted", "cleaned", "up"], proc.stdout
