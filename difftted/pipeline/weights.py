"""Where the pipeline's weights come from: a local folder or a Hugging Face Hub repository.

Resolution order for the weights location (`resolve_weights`):
1. the explicit argument (``--weights`` on the command line, ``from_pretrained(name)`` in Python);
2. the environment variable ``DIFFTTED_WEIGHTS``;
3. the default folder ``weights/`` at the project root.

A location is either a folder holding a pipeline (the layout in weights/README.md) or a Hub
repository id (``owner/name``), fetched with `huggingface_hub.snapshot_download`, restricted to
json and safetensors files: pickles are never downloaded nor loaded. Anything missing, offline
and not cached, or unreachable raises `WeightsNotFoundError` saying what is missing and how to
get it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

logger = logging.getLogger(__name__)

ENV_VAR = "DIFFTTED_WEIGHTS"
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
PIPELINE_FILE = "pipeline.json"
#: The files a pipeline folder must hold: a json or a glob of at least one safetensors file.
REQUIRED_FILES = (
    PIPELINE_FILE,
    "denoiser/config.json",
    "denoiser/*.safetensors",
    "scheduler/scheduler_config.json",
    "renderer/config.json",
    "renderer/*.safetensors",
)
#: Only these are fetched from the Hub (README.md for the model card).
HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "README.md"]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

HOW_TO_GET = (
    "Get weights by one of: (a) copy a pipeline folder (layout: weights/README.md) into "
    f"{DEFAULT_WEIGHTS_DIR}; (b) pass --weights DIR_OR_HUB_REPO_ID (Python: "
    f"DiffTEDPipeline.from_pretrained(...)) or set {ENV_VAR}; (c) train them: "
    "`python -m difftted tps train` (or `python -m difftted tps convert` for an official "
    "TPSMM checkpoint), then `python -m difftted train`, as weights/README.md describes."
)


class WeightsNotFoundError(FileNotFoundError):
    """The pipeline's weights are missing, incomplete, or cannot be fetched."""


def resolve_weights(location: str | os.PathLike | None = None, *, revision: str | None = None,
                    cache_dir: str | os.PathLike | None = None) -> Path:
    """The local folder holding a complete pipeline, downloading it from the Hub if needed.

    Args:
        location: a folder, a Hub repo id (``owner/name``), or None for ``$DIFFTTED_WEIGHTS`` and
            then the default ``weights/`` folder.
        revision: Hub branch, tag or commit (Hub ids only).
        cache_dir: Hub cache folder (default: huggingface_hub's).
    """
    source = "argument"
    if location is None or str(location) == "":
        location, source = os.environ.get(ENV_VAR) or None, f"${ENV_VAR}"
    if location is None:
        location, source = DEFAULT_WEIGHTS_DIR, "the default folder"
    text = str(location)
    path = Path(text).expanduser()
    if path.exists() or not looks_like_repo_id(text):
        if path.exists() and not path.is_dir():
            raise WeightsNotFoundError(f"weights {text!r} ({source}) is a file; expected a pipeline folder. {HOW_TO_GET}")
        if not path.exists():
            raise WeightsNotFoundError(f"weights folder {text!r} ({source}) does not exist. {HOW_TO_GET}")
        check_pipeline_folder(path, origin=f"weights folder {str(path)!r} ({source})")
        return path
    return _download(text, revision=revision, cache_dir=cache_dir, source=source)


def looks_like_repo_id(text: str) -> bool:
    """``owner/name`` with Hub-legal characters, and not an obvious local path."""
    return bool(_REPO_ID.match(text)) and not text.startswith((".", "~")) and ".." not in text


def missing_files(folder: Path) -> list[str]:
    """The entries of `REQUIRED_FILES` absent from ``folder``."""
    missing = []
    for pattern in REQUIRED_FILES:
        found = any(folder.glob(pattern)) if "*" in pattern else (folder / pattern).is_file()
        if not found:
            missing.append(pattern)
    return missing


def check_pipeline_folder(folder: Path, *, origin: str) -> None:
    """Raise `WeightsNotFoundError` naming every missing file of the pipeline layout."""
    missing = missing_files(folder)
    if len(missing) == len(REQUIRED_FILES):
        raise WeightsNotFoundError(
            f"{origin} holds no DiffTED pipeline (no {PIPELINE_FILE}, denoiser/, scheduler/ or renderer/). "
            f"The demo weights ship in the repository's weights/ folder ({DEFAULT_WEIGHTS_DIR}). {HOW_TO_GET}"
        )
    if missing:
        raise WeightsNotFoundError(f"{origin} is incomplete: missing {', '.join(missing)}. {HOW_TO_GET}")


def _download(repo_id: str, *, revision: str | None, cache_dir: str | os.PathLike | None, source: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    logger.info("fetching pipeline %s from the Hugging Face Hub%s", repo_id, " (offline: cache only)" if offline else "")
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir,
                                        allow_patterns=HUB_ALLOW_PATTERNS))
    except LocalEntryNotFoundError as err:
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub could not be reached"
        raise WeightsNotFoundError(
            f"Hub weights {repo_id!r} ({source}) are not in the local cache and {why}. Download them once "
            f"online (`hf download {repo_id}`), or unset HF_HUB_OFFLINE, or pass a local folder. {HOW_TO_GET}"
        ) from err
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as err:
        raise WeightsNotFoundError(
            f"Hub weights {repo_id!r}{'@' + revision if revision else ''} ({source}) not accessible: "
            f"{type(err).__name__}. Check the id (and `hf auth login` for a private repo). {HOW_TO_GET}"
        ) from err
    except (HfHubHTTPError, OSError) as err:
        raise WeightsNotFoundError(f"Hub weights {repo_id!r} ({source}) could not be fetched: {err}. {HOW_TO_GET}") from err
    check_pipeline_folder(folder, origin=f"Hub repository {repo_id!r}")
    return folder


# ------------------------------------------------------------------------------ the folder itself
PIPELINE_FORMAT = "difftted.pipeline.v1"


def load_components(folder: Path) -> dict:
    """The keyword arguments of `DiffTEDPipeline` from a pipeline folder (checked complete).

    Every tensor comes from safetensors: the denoiser through diffusers with
    ``use_safetensors=True``, the renderer through `tps.TPSMotionModel.from_pretrained`.
    """
    from difftted.audio.features import AudioFeatureConfig
    from difftted.motion.denoiser import KeypointDenoiser
    from difftted.motion.keypoints import KeypointStats
    from difftted.motion.sampling import scheduler_class
    from tps import TPSMotionModel

    check_pipeline_folder(folder, origin=f"weights folder {str(folder)!r}")
    check_weight_files(folder)
    meta = _read_json(folder / PIPELINE_FILE)
    unknown = sorted(set(meta) - {"format", "fps", "audio", "keypoint_stats", "offset_stats", "sampling", "keypoints"})
    if unknown or meta.get("format") != PIPELINE_FORMAT:
        raise ValueError(f"{folder / PIPELINE_FILE}: expected format {PIPELINE_FORMAT!r} with keys format, fps, "
                         f"audio, keypoint_stats, [offset_stats], sampling, [keypoints]; got format {meta.get('format')!r}, "
                         f"unknown keys {unknown}")
    scheduler_config = _read_json(folder / "scheduler" / "scheduler_config.json")
    try:
        scheduler_cls = scheduler_class(str(scheduler_config.get("_class_name")))
    except ValueError as err:
        raise ValueError(f"{folder}/scheduler/scheduler_config.json: _class_name "
                         f"{scheduler_config.get('_class_name')!r} is not a diffusers scheduler") from err
    sampling = dict(meta.get("sampling", {}))
    try:  # the files are well formed (checked above); what is left is a mismatch with the code
        denoiser = KeypointDenoiser.from_pretrained(folder / "denoiser", use_safetensors=True)
    except (OSError, RuntimeError, TypeError, KeyError) as err:
        raise ValueError(f"{folder / 'denoiser'}: cannot load the denoiser: {err}") from err
    try:
        renderer = TPSMotionModel.from_pretrained(folder / "renderer")
    except (OSError, RuntimeError, TypeError, KeyError) as err:
        raise ValueError(f"{folder / 'renderer'}: cannot load the renderer: {err}") from err
    return dict(
        denoiser=denoiser,
        scheduler=scheduler_cls.from_config(scheduler_config),
        renderer=renderer,
        keypoint_stats=KeypointStats.from_dict(meta["keypoint_stats"]),
        offset_stats=KeypointStats.from_dict(meta["offset_stats"]) if "offset_stats" in meta else None,
        audio_config=AudioFeatureConfig.from_dict(meta["audio"]),
        fps=meta["fps"],
        keypoint_source=meta.get("keypoints", "detector"),
        **{k: sampling[k] for k in ("num_inference_steps", "guidance_scale", "relative_motion", "drift_seconds",
                                    "part_scales") if k in sampling},
    )


def save_components(pipe, folder: Path) -> Path:
    """Write ``pipe`` (a `DiffTEDPipeline`) as the folder `load_components` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    pipe.denoiser.save_pretrained(folder / "denoiser", safe_serialization=True)
    pipe.scheduler.save_pretrained(folder / "scheduler")
    pipe.renderer.save_pretrained(folder / "renderer")
    write_pipeline_json(folder, fps=pipe.fps, audio_config=pipe.audio_config, keypoint_stats=pipe.keypoint_stats,
                        offset_stats=pipe.offset_stats, relative_motion=pipe.relative_motion,
                        num_inference_steps=pipe.num_inference_steps, guidance_scale=pipe.guidance_scale,
                        drift_seconds=pipe.drift_seconds, keypoints=pipe.keypoint_source,
                        part_scales=pipe.part_scales)
    logger.info("saved the pipeline to %s", folder)
    return folder


def write_pipeline_json(folder: Path, *, fps: float, audio_config, keypoint_stats, num_inference_steps: int,
                        guidance_scale: float, offset_stats=None, relative_motion: bool = False,
                        drift_seconds: float | None = None, keypoints: str = "detector",
                        part_scales: dict[str, float] | None = None) -> Path:
    """``folder/pipeline.json``: what a pipeline needs beside its networks (see weights/README.md).

    ``offset_stats`` (a `KeypointStats`, for a denoiser whose ``motion_target`` is
    ``"source_offset"``) is written only when given; ``relative_motion`` is a sampling default
    like the other two, and so is ``drift_seconds`` (0: no drift removal), written only when
    given (absent, the pipeline's default applies; see `DiffTEDPipeline.__call__`). ``keypoints``,
    where the photo's keypoints come from (`difftted.pipeline.pipeline.KEYPOINT_SOURCES`), is
    written when it is not the default ``"detector"`` (so detector folders keep their file).
    ``part_scales`` (default per-part intensity of body pipelines) is written when not empty.
    """
    meta = {
        "format": PIPELINE_FORMAT,
        "fps": float(fps),
        "audio": audio_config.to_dict(),
        "keypoint_stats": keypoint_stats.to_dict(),
        **({"offset_stats": offset_stats.to_dict()} if offset_stats is not None else {}),
        **({"keypoints": keypoints} if keypoints != "detector" else {}),
        "sampling": {"num_inference_steps": int(num_inference_steps), "guidance_scale": float(guidance_scale),
                     "relative_motion": bool(relative_motion),
                     **({} if drift_seconds is None else {"drift_seconds": float(drift_seconds)}),
                     **({"part_scales": {k: float(v) for k, v in part_scales.items()}} if part_scales else {})},
    }
    path = Path(folder) / PIPELINE_FILE
    path.write_text(json.dumps(meta, indent=1) + "\n")
    return path


#: The files the loaders read (diffusers' and `tps.TPSMotionModel`'s names): beside them, any other
#: file (a pickle, a differently named safetensors file) is never read.
JSON_FILES = (PIPELINE_FILE, "denoiser/config.json", "scheduler/scheduler_config.json", "renderer/config.json")
SAFETENSORS_FILES = ("denoiser/diffusion_pytorch_model.safetensors", "renderer/model.safetensors")
_MAX_HEADER = 100_000_000  # bytes of a safetensors header; the format's own limit


def check_weight_files(folder: Path) -> None:
    """Raise ValueError naming the file and what is wrong with it, for every way a pipeline folder
    can be broken before any tensor is read: a json file that is not a json object, a weights file
    missing under the name the loader reads (another ``*.safetensors`` beside it is a decoy, a
    pickle is never loaded), a file that is not safetensors (e.g. a pickle renamed), or one cut
    short (its header promises more bytes than it holds)."""
    for name in JSON_FILES:
        _read_json(folder / name)
    for name in SAFETENSORS_FILES:
        path = folder / name
        if not path.is_file():
            others = sorted(p.name for p in path.parent.glob("*") if p.is_file() and p.name != "config.json")
            raise ValueError(f"{path} is missing: only that name is read (the folder holds {others}; pickles "
                             "are never loaded, convert them to safetensors)")
        _check_safetensors(path)


def _check_safetensors(path: Path) -> None:
    """The safetensors layout: an 8-byte header length, a json header, then exactly the bytes of
    every tensor it lists."""
    size = path.stat().st_size
    with path.open("rb") as f:
        start = f.read(8)
        length = int.from_bytes(start, "little") if len(start) == 8 else -1
        if not 2 <= length <= min(size - 8, _MAX_HEADER):
            if start[:2] == b"PK" or start[:1] == b"\x80":  # torch.save's zip, or a bare pickle
                raise ValueError(f"{path} is a pickle (torch.save), not safetensors: pickles are never loaded")
            raise ValueError(f"{path} is not a safetensors file (its first 8 bytes do not give a header length "
                             f"within its {size} bytes): truncated or another format")
        try:
            header = json.loads(f.read(length))
            ends = [int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"]
        except (ValueError, TypeError, KeyError, IndexError) as err:
            raise ValueError(f"{path} is not a safetensors file (its header is not valid: {err})") from err
    expected = 8 + length + max(ends, default=0)
    if size != expected:
        raise ValueError(f"{path} is {'truncated' if size < expected else 'damaged'}: its header lists "
                         f"{expected} bytes, the file holds {size}")


def pipeline_keypoints(folder: Path) -> str:
    """Where a pipeline folder's photo keypoints come from (pipeline.json ``"keypoints"``;
    ``"detector"`` when absent), read without loading anything else."""
    return str(_read_json(Path(folder) / PIPELINE_FILE).get("keypoints", "detector"))


def renderer_side(folder: Path) -> int:
    """The renderer's resolution (longer side, pixels) from ``folder/renderer/config.json``."""
    config = _read_json(Path(folder) / "renderer" / "config.json")
    size = config.get("image_size")
    if not (isinstance(size, list) and size and all(isinstance(v, int) and v > 0 for v in size)):
        raise ValueError(f"{Path(folder) / 'renderer' / 'config.json'}: image_size must be a list of positive "
                         f"ints, got {size!r}")
    return max(size)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid json: {err}") from err
    except OSError as err:
        raise ValueError(f"{path} cannot be read: {err.strerror or err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a json object, got {type(data).__name__}")
    return data
