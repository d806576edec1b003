"""Finding the weights: argument, DIFFTTED_WEIGHTS, the default folder, the Hub (offline here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from difftted.pipeline import weights
from difftted.pipeline.weights import WeightsNotFoundError, looks_like_repo_id, resolve_weights


@pytest.fixture
def empty_default(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "README.md").write_text("what goes here")
    monkeypatch.setattr(weights, "DEFAULT_WEIGHTS_DIR", folder)
    monkeypatch.delenv(weights.ENV_VAR, raising=False)
    return folder


def test_default_folder_is_the_projects_weights_dir():
    assert weights.DEFAULT_WEIGHTS_DIR == Path(__file__).resolve().parents[2] / "weights"
    assert (weights.DEFAULT_WEIGHTS_DIR / "README.md").is_file()


def test_empty_default_says_what_is_missing_and_how_to_get_it(empty_default):
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights()
    message = str(info.value)
    assert "holds no DiffTED pipeline" in message and "pipeline.json" in message
    assert "--weights" in message and weights.ENV_VAR in message and "README.md" in message
    assert "train" in message


def test_argument_then_env_var_then_default(empty_default, tiny_pipeline_dir, monkeypatch, tmp_path):
    assert resolve_weights(tiny_pipeline_dir) == tiny_pipeline_dir
    monkeypatch.setenv(weights.ENV_VAR, str(tiny_pipeline_dir))
    assert resolve_weights() == tiny_pipeline_dir
    monkeypatch.setenv(weights.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(WeightsNotFoundError, match=r"\$DIFFTTED_WEIGHTS"):
        resolve_weights()
    monkeypatch.delenv(weights.ENV_VAR)
    shutil.copytree(tiny_pipeline_dir, empty_default, dirs_exist_ok=True)
    assert resolve_weights() == empty_default


def test_incomplete_folder_names_the_missing_files(tiny_pipeline_dir, tmp_path):
    copy = shutil.copytree(tiny_pipeline_dir, tmp_path / "copy")
    (copy / "renderer" / "model.safetensors").unlink()
    (copy / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(WeightsNotFoundError, match="incomplete") as info:
        resolve_weights(copy)
    assert "renderer/*.safetensors" in str(info.value) and "scheduler/scheduler_config.json" in str(info.value)
    assert "pipeline.json" not in str(info.value)


def test_pickles_alone_are_not_weights(tiny_pipeline_dir, tmp_path):
    copy = shutil.copytree(tiny_pipeline_dir, tmp_path / "copy")
    for f in (copy / "denoiser").glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    with pytest.raises(WeightsNotFoundError, match=r"denoiser/\*\.safetensors"):
        resolve_weights(copy)


def test_a_file_is_not_a_folder(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"")
    with pytest.raises(WeightsNotFoundError, match="is a file"):
        resolve_weights(f)


def test_hub_id_offline_and_not_cached(tmp_path):
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights("someone/difftted-demo", cache_dir=tmp_path)
    assert "not in the local cache" in str(info.value) and "HF_HUB_OFFLINE" in str(info.value)


def test_hub_id_from_the_cache_offline(tiny_pipeline_dir, tmp_path):
    # The layout huggingface_hub leaves after a download: refs/main -> snapshots/<commit>/...
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--someone--difftted-demo"
    shutil.copytree(tiny_pipeline_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    folder = resolve_weights("someone/difftted-demo", cache_dir=tmp_path)
    assert folder == repo / "snapshots" / commit
    from difftted import DiffTEDPipeline

    pipe = DiffTEDPipeline.from_pretrained(folder)
    assert pipe.renderer.config.image_size == (64, 64)


@pytest.mark.parametrize("text, expected", [
    ("owner/name", True), ("my-org/difftted.v1", True), ("./owner/name", False),
    ("~/weights", False), ("a/b/c", False), ("weights", False), ("../x/y", False),
])
def test_repo_id_recognition(text, expected):
    assert looks_like_repo_id(text) is expected


def test_pipeline_json_format_is_checked(tiny_pipeline_dir, tmp_path):
    from difftted.pipeline.weights import load_components

    copy = shutil.copytree(tiny_pipeline_dir, tmp_path / "copy")
    meta = json.loads((copy / "pipeline.json").read_text())
    meta["fsp"] = 25
    (copy / "pipeline.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="fsp"):
        load_components(copy)


def test_saved_layout(tiny_pipeline_dir):
    names = {p.relative_to(tiny_pipeline_dir).as_posix() for p in tiny_pipeline_dir.rglob("*") if p.is_file()}
    assert names == {"pipeline.json", "denoiser/config.json", "denoiser/diffusion_pytorch_model.safetensors",
                     "scheduler/scheduler_config.json", "renderer/config.json", "renderer/model.safetensors"}
    meta = json.loads((tiny_pipeline_dir / "pipeline.json").read_text())
    assert set(meta) == {"format", "fps", "audio", "keypoint_stats", "sampling"}
