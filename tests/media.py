"""Test helpers on media files (no package code uses them)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def stream_codecs(path: str | Path) -> dict[str, str]:
    """``{"video": "h264", "audio": "aac"}``: the codec of the first stream of each kind, as
    ffmpeg names them (absent kinds are left out)."""
    import imageio_ffmpeg

    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    codecs: dict[str, str] = {}
    for line in proc.stderr.decode("utf-8", "replace").splitlines():
        line = line.strip()
        for kind in ("Video", "Audio"):
            marker = f": {kind}: "
            if line.startswith("Stream #") and marker in line and kind.lower() not in codecs:
                codecs[kind.lower()] = line.split(marker, 1)[1].split()[0].rstrip(",")
    return codecs
