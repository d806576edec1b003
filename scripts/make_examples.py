"""Recreate the demo's example inputs in ``examples/`` from sources the project may ship.

- ``astronaut.png``: NASA's portrait of Eileen Collins (public domain), as scikit-image ships it
  (``skimage.data.astronaut()``, 512x512 RGB, upper body).
- ``speech.wav``: an English sentence synthesised by espeak-ng (GPL program; its output is not
  covered by its license), resampled to 16 kHz mono 16-bit PCM.
- ``sway.mp4``: a short driving clip for the "driving video" tab, made from the same photo by a
  slow synthetic sway (rotation + shift), so it carries no third-party footage.

Nothing here reads ``../shared``. Usage::

    python scripts/make_examples.py            # writes into examples/
    python scripts/make_examples.py --out DIR  # elsewhere
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SPEECH_TEXT = "Ideas worth spreading start with a single voice. Let me show you how one photo can speak."
SPEECH_RATE = 16_000
SWAY_SIZE = 256
SWAY_FPS = 25
SWAY_SECONDS = 2.0


def write_photo(out: Path) -> Path:
    """Save scikit-image's astronaut photo (512x512 RGB) as PNG."""
    from PIL import Image
    from skimage import data

    path = out / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path, optimize=True)
    return path


def write_speech(out: Path, text: str = SPEECH_TEXT, voice: str = "en-us", words_per_minute: int = 150) -> Path:
    """Synthesise ``text`` with espeak-ng and store it as 16 kHz mono PCM-16 wav."""
    import soundfile as sf
    from scipy.signal import resample_poly

    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is not installed (Debian/Ubuntu: apt-get install -y espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run([espeak, "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text], check=True)
        waveform, rate = sf.read(raw, dtype="float32", always_2d=True)
    waveform = waveform.mean(axis=1)
    ratio = Fraction(SPEECH_RATE, rate).limit_denominator(1000)
    waveform = resample_poly(waveform, ratio.numerator, ratio.denominator).astype(np.float32)
    # Peak-normalise to -1 dBFS so the example is neither faint nor clipped.
    waveform *= 10 ** (-1 / 20) / max(float(np.abs(waveform).max()), 1e-6)
    path = out / "speech.wav"
    sf.write(path, waveform, SPEECH_RATE, subtype="PCM_16")
    return path


def write_sway(out: Path, photo: Path) -> Path:
    """A ``SWAY_SECONDS`` clip of the photo swaying gently (H.264, ``SWAY_SIZE`` px, no audio)."""
    import imageio.v2 as imageio
    from PIL import Image

    image = Image.open(photo).convert("RGB").resize((SWAY_SIZE, SWAY_SIZE), Image.Resampling.LANCZOS)
    num_frames = int(SWAY_SECONDS * SWAY_FPS)
    path = out / "sway.mp4"
    with imageio.get_writer(path, fps=SWAY_FPS, codec="libx264", quality=6, macro_block_size=16) as writer:
        for index in range(num_frames):
            phase = 2 * np.pi * index / num_frames
            frame = image.rotate(
                4.0 * np.sin(phase),
                resample=Image.Resampling.BICUBIC,
                translate=(6.0 * np.sin(phase), 3.0 * np.sin(2 * phase)),
                fillcolor=(0, 0, 0),
            )
            writer.append_data(np.asarray(frame))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "examples", help="output folder (default: examples/)")
    parser.add_argument("--text", default=SPEECH_TEXT, help="the sentence to synthesise")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    photo = write_photo(args.out)
    speech = write_speech(args.out, args.text)
    sway = write_sway(args.out, photo)
    for path in (photo, speech, sway):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
