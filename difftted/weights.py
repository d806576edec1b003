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
DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
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
    "`python -m difftted train-renderer` (or `python -m difftted convert-tpsmm` for an official "
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
            f"Trained weights are not bundled yet. {HOW_TO_GET}"
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
    import diffusers
    from diffusers import SchedulerMixin

    from difftted.audio import AudioFeatureConfig
    from difftted.denoiser import KeypointDenoiser
    from difftted.keypoints import KeypointStats
    from tps import TPSMotionModel

    check_pipeline_folder(folder, origin=f"weights folder {str(folder)!r}")
    meta = _read_json(folder / PIPELINE_FILE)
    unknown = sorted(set(meta) - {"format", "fps", "audio", "keypoint_stats", "offset_stats", "sampling"})
    if unknown or meta.get("format") != PIPELINE_FORMAT:
        raise ValueError(f"{folder / PIPELINE_FILE}: expected format {PIPELINE_FORMAT!r} with keys format, fps, "
                         f"audio, keypoint_stats, [offset_stats], sampling; got format {meta.get('format')!r}, "
                         f"unknown keys {unknown}")
    scheduler_config = _read_json(folder / "scheduler" / "scheduler_config.json")
    scheduler_cls = getattr(diffusers, str(scheduler_config.get("_class_name")), None)
    if not (isinstance(scheduler_cls, type) and issubclass(scheduler_cls, SchedulerMixin)):
        raise ValueError(f"{folder}/scheduler/scheduler_config.json: _class_name "
                         f"{scheduler_config.get('_class_name')!r} is not a diffusers scheduler")
    sampling = dict(meta.get("sampling", {}))
    return dict(
        denoiser=KeypointDenoiser.from_pretrained(folder / "denoiser", use_safetensors=True),
        scheduler=scheduler_cls.from_config(scheduler_config),
        renderer=TPSMotionModel.from_pretrained(folder / "renderer"),
        keypoint_stats=KeypointStats.from_dict(meta["keypoint_stats"]),
        offset_stats=KeypointStats.from_dict(meta["offset_stats"]) if "offset_stats" in meta else None,
        audio_config=AudioFeatureConfig.from_dict(meta["audio"]),
        fps=meta["fps"],
        **{k: sampling[k] for k in ("num_inference_steps", "guidance_scale", "relative_motion", "drift_seconds")
           if k in sampling},
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
                        drift_seconds=pipe.drift_seconds)
    logger.info("saved the pipeline to %s", folder)
    return folder


def write_pipeline_json(folder: Path, *, fps: float, audio_config, keypoint_stats, num_inference_steps: int,
                        guidance_scale: float, offset_stats=None, relative_motion: bool = False,
                        drift_seconds: float | None = None) -> Path:
    """``folder/pipeline.json``: what a pipeline needs beside its networks (see weights/README.md).

    ``offset_stats`` (a `KeypointStats`, for a denoiser whose ``motion_target`` is
    ``"source_offset"``) is written only when given; ``relative_motion`` is a sampling default
    like the other two, and so is ``drift_seconds`` (0: no drift removal), written only when
    given (absent, the pipeline's default applies; see `DiffTEDPipeline.__call__`).
    """
    meta = {
        "format": PIPELINE_FORMAT,
        "fps": float(fps),
        "audio": audio_config.to_dict(),
        "keypoint_stats": keypoint_stats.to_dict(),
        **({"offset_stats": offset_stats.to_dict()} if offset_stats is not None else {}),
        "sampling": {"num_inference_steps": int(num_inference_steps), "guidance_scale": float(guidance_scale),
                     "relative_motion": bool(relative_motion),
                     **({} if drift_seconds is None else {"drift_seconds": float(drift_seconds)})},
    }
    path = Path(folder) / PIPELINE_FILE
    path.write_text(json.dumps(meta, indent=1) + "\n")
    return path


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid json: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a json object, got {type(data).__name__}")
    return data
