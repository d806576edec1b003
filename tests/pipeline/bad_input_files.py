"""Makers of the bad-input catalogue's files (huge photos, decompression bombs, unreadable photos,
hour-long compressed audio, truncated audio, broken weights folders), all written in a test's own
folder, cheaply: the huge PNG is streamed row by row, the long audio is one encoded minute
repeated by stream copy with the ffmpeg that imageio-ffmpeg ships. Loaded by the test files with
a spec loader (the tests run with ``--import-mode=importlib``)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

# ------------------------------------------------------------------------------------ photos
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header(width: int, height: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))


def write_png(path: Path, width: int, height: int) -> Path:
    """An RGB PNG of a horizontal gradient, streamed: memory does not depend on the size."""
    row = bytearray(1 + 3 * width)
    for x in range(width):
        row[1 + 3 * x: 4 + 3 * x] = bytes((x * 255 // width, 120, 200))
    row = bytes(row)
    comp = zlib.compressobj(6)
    with path.open("wb") as f:
        f.write(png_header(width, height))
        for _ in range(height):
            data = comp.compress(row)
            if data:
                f.write(_chunk(b"IDAT", data))
        f.write(_chunk(b"IDAT", comp.flush()) + _chunk(b"IEND", b""))
    return path


def write_bomb_png(path: Path, side: int = 20000) -> Path:
    """A PNG whose header says ``side x side`` pixels and whose data is a few bytes: a
    decompression bomb as Pillow sees it, costing nothing to write."""
    path.write_bytes(png_header(side, side) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))
    return path


def unreadable_photos(folder: Path, good_jpeg: Path) -> dict[str, Path]:
    """Files named like photos that are not readable ones."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "empty": folder / "empty.png",
        "text": folder / "notes.png",
        "svg": folder / "drawing.svg",
        "pdf": folder / "document.png",
        "truncated jpeg": folder / "truncated.jpg",
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("these are my speaker notes, not a photo\n")
    files["svg"].write_text('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
                            '<circle cx="32" cy="32" r="20"/></svg>\n')
    files["pdf"].write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
    data = good_jpeg.read_bytes()
    files["truncated jpeg"].write_bytes(data[: len(data) // 3])
    return files


# ------------------------------------------------------------------------------------- audio
def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", *args], check=True)


def write_long_m4a(path: Path, minutes: int = 60) -> Path:
    """``minutes`` of a low-bitrate mono sine as AAC in m4a: one minute encoded, then repeated by
    stream copy (seconds to write, about 180 KB a minute)."""
    one = path.with_name(path.stem + "_1min.m4a")
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:sample_rate=16000:duration=60", "-ac", "1",
           "-c:a", "aac", "-b:a", "24k", str(one))
    ffmpeg("-stream_loop", str(minutes - 1), "-i", str(one), "-c", "copy", str(path))
    one.unlink()
    return path


def write_truncated_mp3(path: Path, seconds: float = 4.0, keep: float = 0.5) -> Path:
    """An mp3 of ``seconds`` (with the Xing header that gives its length) cut to ``keep`` of its bytes."""
    full = path.with_name(path.stem + "_full.mp3")
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=220:sample_rate=16000:duration={seconds}", "-ac", "1",
           "-c:a", "libmp3lame", "-b:a", "32k", str(full))
    data = full.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    full.unlink()
    return path


# ----------------------------------------------------------------------------------- weights
def broken_weights(source: Path, folder: Path) -> dict[str, tuple[Path, str, str]]:
    """Copies of the pipeline folder ``source``, each broken one way: name -> (folder, the file the
    message must name, what the message must say)."""
    cases: dict[str, tuple[Path, str, str]] = {}

    def copy(name: str) -> Path:
        return Path(shutil.copytree(source, folder / name.replace(" ", "_")))

    d = copy("corrupt config")
    (d / "denoiser" / "config.json").write_text('{"num_keypoints": 50, ')
    cases["corrupt config"] = (d, "denoiser/config.json", "is not valid json")

    d = copy("truncated safetensors")
    weights = d / "renderer" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    cases["truncated safetensors"] = (d, "renderer/model.safetensors", "is truncated")

    d = copy("pickle beside a decoy")
    real = d / "denoiser" / "diffusion_pytorch_model.safetensors"
    real.unlink()
    _torch_pickle(d / "denoiser" / "diffusion_pytorch_model.bin")
    (d / "denoiser" / "decoy.safetensors").write_bytes(b"not really safetensors")
    cases["pickle beside a decoy"] = (d, "denoiser/diffusion_pytorch_model.safetensors", "is missing")

    d = copy("pickle renamed")
    _torch_pickle(d / "denoiser" / "diffusion_pytorch_model.safetensors")
    cases["pickle renamed"] = (d, "denoiser/diffusion_pytorch_model.safetensors", "is a pickle")

    d = copy("missing file")
    (d / "scheduler" / "scheduler_config.json").unlink()
    cases["missing file"] = (d, "scheduler/scheduler_config.json", "incomplete")

    d = copy("not an object")
    (d / "pipeline.json").write_text("[1, 2, 3]")
    cases["not an object"] = (d, "pipeline.json", "must hold a json object")
    return cases


def _torch_pickle(path: Path) -> None:
    """A torch.save file (a zip holding a pickle), as a user's old checkpoint would be."""
    import torch

    torch.save({"weight": torch.zeros(2)}, path)
