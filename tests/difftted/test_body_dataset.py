"""build-dataset with body-anchored keypoints: a real clip (a few frames) and the BEAT2 mocap."""

from __future__ import annotations

import json

import numpy as np
import pytest

from difftted.data.dataset_layouts import ClipSource


def test_body_dataset_from_a_video_piece_and_mocap(shared_data, tmp_path):
    from difftted.audio.features import AudioFeatureConfig, AudioFeatureExtractor
    from difftted.data.body_dataset import build_body_dataset
    from difftted.data.dataset import BuildOptions

    video = shared_data / "talking" / "face_tpsmm_driving.mp4"
    clip = ClipSource("face", video, start=0.0, end=1.5, audio_start=0.0, audio_end=1.5)
    opts = BuildOptions(fps=25.0, window=34, progress=False, keypoints="body")
    manifest = build_body_dataset([clip], [shared_data / "mocap" / "BEAT2_2_scott_0_1_1.npz"],
                                  AudioFeatureExtractor(AudioFeatureConfig()), tmp_path, opts)
    assert manifest["keypoint_source"] == "body" and not manifest["skipped"]
    kinds = {e["kind"]: e for e in manifest["clips"]}
    assert set(kinds) == {"video", "mocap"}
    assert kinds["video"]["frames"] == 38 and len(kinds["video"]["crop"]) == 4
    assert abs(kinds["mocap"]["duration"] - 63.5) < 0.2
    assert manifest["minutes"]["mocap"] == pytest.approx(kinds["mocap"]["duration"] / 60)
    for e in manifest["clips"]:
        data = np.load(tmp_path / e["file"])
        kp, feats = data["keypoints"], data["audio_features"]
        assert kp.shape == (e["frames"], 50, 2) and np.isfinite(kp).all()
        assert feats.shape[0] == kp.shape[0]
    stats = json.loads((tmp_path / "keypoint_stats.json").read_text())
    assert np.isfinite(np.asarray(stats["std"])).all()


def test_cuts_split_clips_and_exclusions_are_listed(shared_data, tmp_path):
    from difftted.data.body_dataset import load_cuts, split_at_cuts

    video = shared_data / "talking" / "face_tpsmm_driving.mp4"  # 6.76 s
    other = shared_data / "talking" / "vexpress_AOC_gt.mp4"
    cuts_file = tmp_path / "cuts.json"
    cuts_file.write_text(json.dumps({"cuts": {video.name: [0.5, 3.0]}, "exclude": {other.name: "no sync"}}))
    clips, skipped = split_at_cuts([ClipSource("a", video), ClipSource("b", other)], *load_cuts(cuts_file))
    assert [(c.clip_id, c.start, c.end) for c in clips] == [("a__part1", 0.5, 3.0), ("a__part2", 3.0, pytest.approx(6.76, abs=0.05))]
    assert all(c.audio_start == c.start and c.audio_end == c.end for c in clips)
    assert skipped == [{"id": "b", "source": str(other), "reason": "excluded: no sync"}]
    cuts_file.write_text(json.dumps({"cut": {}}))
    with pytest.raises(ValueError, match="unknown keys"):
        load_cuts(cuts_file)


def test_command_needs_a_source():
    from difftted.data.dataset import main

    with pytest.raises(SystemExit):
        main(["--keypoints", "body", "--out", "x"])
    with pytest.raises(SystemExit):
        main(["--videos", "v", "--out", "x"])  # the learned detector needs --detector
