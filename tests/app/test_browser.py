"""A real browser: headless Chromium loads the served page; the test reads the rendered DOM and
keeps a screenshot (in the test's tmp dir and at artifacts/app_screenshot.png, git-ignored).

Chromium runs without a driver: ``--dump-dom`` prints the DOM after the page's scripts ran, and
``--screenshot`` saves a PNG; ``--virtual-time-budget`` lets the page's JavaScript finish first.
Skipped with a reason where no Chromium is installed (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = REPO_ROOT / "artifacts" / "app_screenshot.png"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WINDOW = (1280, 1600)


def _chromium() -> str:
    found = os.environ.get("CHROMIUM") or next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if not found:
        pytest.skip(f"browser test: no Chromium found (looked for {', '.join(BROWSERS)} and $CHROMIUM)")
    return found


def _run_chromium(url: str, profile: Path, *mode: str) -> subprocess.CompletedProcess:
    command = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        f"--user-data-dir={profile}", "--virtual-time-budget=15000", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *mode, url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _text(dom: str) -> str:
    """The DOM's words, one space apart (tags, comments, scripts and styles dropped)."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


@pytest.mark.slow
def test_headless_chromium_renders_the_page(served_demo, tmp_path, max_audio_seconds):
    dump = _run_chromium(served_demo.url, tmp_path / "profile-dom", "--dump-dom")
    assert dump.returncode == 0, dump.stderr[-2000:]
    dom = dump.stdout
    # the inputs, the button and the outputs are rendered by the page's scripts, not just declared
    for element_id in ("photo", "speech", "generate", "video", "keypoints", "beats"):
        assert re.search(rf'id="{element_id}"', dom), f"#{element_id} is not in the rendered page"
    button = re.search(r'<button[^>]*id="generate"[^>]*>(.*?)</button>', dom, flags=re.S)
    assert button and _text(button.group(1)).strip() == "Generate", "no Generate button"
    text = _text(dom)
    for words in ("DiffTED", "Photo", f"Speech (up to {max_audio_seconds:g} s)", "Settings", "Talking video",
                  "Generated keypoints over the frames", "Audio onsets vs motion beats",
                  "Photo + driving video", "Example (public-domain photo, synthesised speech)"):
        assert words in text, f"{words!r} is not on the page"
    assert not re.search(r"\bError\b", text), "the page shows an error"

    screenshot = tmp_path / "app_screenshot.png"
    shot = _run_chromium(served_demo.url, tmp_path / "profile-shot", f"--screenshot={screenshot}")
    assert shot.returncode == 0 and screenshot.is_file(), shot.stderr[-2000:]
    from PIL import Image

    with Image.open(screenshot) as image:
        assert image.size == WINDOW
        colours = image.convert("RGB").resize((64, 80)).getcolors(64 * 80)
        assert colours is None or len(colours) > 20, "the screenshot is blank"
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(screenshot, ARTIFACT)
