"""Dataset building: layouts, the MRAA csv and its defect, real clips through a (random) detector."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from difftted.data import dataset as ds
from difftted.data.dataset_layouts import discover, parse_clip_name, parse_mraa_csv


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory) -> Path:
    """A tiny TPS model with seeded random weights: meaningless keypoints, real plumbing."""
    from tps.model import TPSMotionModel

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("detector")
    TPSMotionModel.from_config("tiny-64").save_pretrained(out)
    return out


def _link(dst: Path, src: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)
    return dst


def test_resample_keypoints_is_linear_in_time():
    t_src = np.arange(50) / 10.0  # 10 fps
    kp = np.stack([t_src, 2 * t_src], axis=-1)[:, None, :].repeat(3, axis=1)  # [50, 3, 2], linear in t
    out = ds.resample_keypoints(kp, 10.0, 25.0)
    assert out.shape == (125, 3, 2)
    t_dst = np.minimum(np.arange(125) / 25.0, t_src[-1])
    np.testing.assert_allclose(out[:, 0, 0], t_dst, atol=1e-5)
    np.testing.assert_allclose(out[:, 2, 1], 2 * t_dst, atol=1e-5)
    np.testing.assert_array_equal(ds.resample_keypoints(kp, 25.0, 25.0), kp.astype(np.float32))
    with pytest.raises(ValueError, match="dst_fps"):
        ds.resample_keypoints(kp, 10.0, 0.0)


def test_parse_clip_name():
    assert parse_clip_name("VM6HZqQKhok#016609#016737") == ("VM6HZqQKhok", 16609, 16737)
    assert parse_clip_name("my_talk") is None


def test_mraa_csv_defect_is_repaired(shared_data):
    rows = parse_mraa_csv(shared_data / "ted_metadata" / "ted-metadata.csv")
    assert len(rows) == 1320
    assert len({r.talk_id for r in rows}) == 411
    # the shipped columns say start=end=0: the range must come from the id
    for r in rows:
        _, start, end = parse_clip_name(r.video_id)
        assert (r.start, r.end) == (start, end) and end > start
        assert r.partition is None  # "train" everywhere is no partition
    assert rows[0].bbox == (104, 10, 665, 570) and rows[0].fps == 10.0


def test_mraa_csv_with_real_columns(tmp_path):
    csv = tmp_path / "meta.csv"
    csv.write_text("video_id,start,end,bbox,fps,width,height,partition\n"
                   "abc#000010#000050,20,60,0-0-100-100,10.0,200,200,train\n"
                   "def#000000#000040,0,0,,25.0,0,0,test\n")
    a, b = parse_mraa_csv(csv)
    assert (a.start, a.end, a.partition, a.bbox) == (20, 60, "train", (0, 0, 100, 100))
    assert (b.start, b.end, b.partition, b.bbox) == (0, 40, "test", None)
    bad = tmp_path / "bad.csv"
    bad.write_text("video_id,start,end,fps\nnoid,0,0,10\n")
    with pytest.raises(ValueError, match="noid"):
        parse_mraa_csv(bad)


def test_mraa_csv_with_ted384_clips_takes_the_folder_split(tmp_path, shared_data):
    root = tmp_path / "ted"
    _link(root / "test" / "abcdefghijk#000000#000050.mp4", shared_data / "ted_silent" / "ted_driving_384.mp4")
    _link(root / "test" / "abcdefghijk#000000#000050.wav", shared_data / "talking" / "speech_radio31.wav")
    csv = tmp_path / "meta.csv"
    csv.write_text("video_id,start,end,bbox,fps,width,height,partition\n"
                   "abcdefghijk#000000#000050,0,0,1-2-3-4,10.0,944,944,train\n"
                   "zzzzzzzzzzz#000000#000050,0,0,1-2-3-4,10.0,944,944,train\n")
    (clip, other) = discover(root, csv_path=csv)
    assert clip.split == "test" and clip.audio.suffix == ".wav" and clip.crop is None
    assert other.split == "train" and not other.video.exists()


def test_mraa_csv_cuts_and_crops_whole_talks(tmp_path, shared_data, detector_dir):
    talk = _link(tmp_path / "videos" / "talkA.mp4", shared_data / "talking" / "retalking_face2.mp4")  # 844x844, 5 s
    csv = tmp_path / "meta.csv"
    csv.write_text("video_id,start,end,bbox,fps,width,height,partition\n"
                   "talkA#000010#000040,0,0,0-0-211-211,10.0,422,422,train\n"
                   "missing#000000#000040,0,0,0-0-10-10,10.0,422,422,train\n")
    clip, missing = discover(tmp_path / "videos", csv_path=csv)
    assert clip.video == talk and clip.clip_id == "talkA#000010#000040"
    assert (clip.start, clip.end) == pytest.approx((1.0, 4.0))
    assert clip.crop == (0, 0, 422, 422)  # bbox given for 422x422, scaled to the real 844x844
    out = tmp_path / "data"
    assert ds.main(["--videos", str(tmp_path / "videos"), "--csv", str(csv), "--detector", str(detector_dir),
                    "--out", str(out), "--window", "34", "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    (entry,) = manifest["clips"]
    assert entry["source_frames"] == 75 and entry["frames"] == 75  # 3 s at 25 fps
    assert np.load(out / entry["file"])["waveform"].shape[0] == 3 * 16000
    assert manifest["skipped"][0]["id"] == "missing#000000#000040"
    assert "not found" in manifest["skipped"][0]["reason"]


def test_build_dataset_folder_layout(tmp_path, shared_data, detector_dir):
    talking = shared_data / "talking"
    videos = tmp_path / "videos"
    _link(videos / "face1.mp4", talking / "retalking_face1.mp4")  # 22.13 fps, 6.13 s
    _link(videos / "katie.mp4", talking / "examples_ref_video_WDA_KatieHill_000.mp4")  # 25 fps, 8 s
    _link(videos / "silent.mp4", shared_data / "ted_silent" / "ted_driving_384.mp4")  # no sound
    out = tmp_path / "data"
    rc = ds.main(["--videos", str(videos), "--detector", str(detector_dir), "--out", str(out),
                  "--window", "100", "--batch-size", "32", "--no-progress"])
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["id"] for c in manifest["clips"]] == ["face1", "katie"]
    assert [s["id"] for s in manifest["skipped"]] == ["silent"]
    assert "no audio" in manifest["skipped"][0]["reason"]
    face1 = manifest["clips"][0]
    # a variable-frame-rate file (22.13 fps on average): the keypoints must span its 6.13 s
    assert face1["duration"] == pytest.approx(6.13, abs=0.1)
    assert face1["frames"] == round(face1["source_frames"] * 25 / face1["source_fps"])
    dim = manifest["feature_dim"]
    for entry in manifest["clips"]:
        data = np.load(out / entry["file"])
        kp, feats = data["keypoints"], data["audio_features"]
        assert kp.shape == (entry["frames"], 50, 2) and kp.dtype == np.float32
        assert np.abs(kp).max() <= 1.0
        assert feats.shape == (entry["frames"], dim) and np.isfinite(feats).all()
        assert int(data["sample_rate"]) == manifest["audio_config"]["sample_rate"]
        assert data["waveform"].shape[0] == pytest.approx(entry["duration"] * int(data["sample_rate"]), rel=0.05)
    from difftted.motion.keypoints import KeypointStats

    stats = KeypointStats.load(out / "keypoint_stats.json")
    all_kp = np.concatenate([np.load(out / e["file"])["keypoints"] for e in manifest["clips"]])
    np.testing.assert_allclose(stats.mean, all_kp.mean(axis=0), atol=1e-5)


def test_build_dataset_ted384_layout_with_audio_beside(tmp_path, shared_data, detector_dir):
    root = tmp_path / "ted"
    clip = "abcdefghijk#000100#000233"
    _link(root / "train" / f"{clip}.mp4", shared_data / "ted_silent" / "ted_driving_384.mp4")  # 10 fps, silent
    _link(root / "train" / f"{clip}.wav", shared_data / "talking" / "speech_radio31.wav")  # the talk's sound
    _link(root / "test" / "short#0#45.mp4", shared_data / "talking" / "vexpress_AOC_gt.mp4")  # 4.57 s
    out = tmp_path / "data"
    clips = discover(root)
    assert [(c.clip_id, c.split) for c in clips] == [(clip, "train"), ("short#0#45", "test")]
    opts = ds.BuildOptions(fps=25.0, window=120, batch_size=32, progress=False)
    from difftted.audio.features import AudioFeatureExtractor
    from tps.model import TPSMotionModel

    manifest = ds.build_dataset(clips, TPSMotionModel.from_pretrained(detector_dir), AudioFeatureExtractor(),
                                out, opts)
    (entry,) = manifest["clips"]
    assert entry["id"] == clip and entry["frames"] == round(133 * 25 / 10)
    assert entry["audio_source"].endswith(".wav")
    (skipped,) = manifest["skipped"]
    assert skipped["id"] == "short#0#45" and "too short" in skipped["reason"]


def test_build_dataset_errors(tmp_path, detector_dir):
    assert ds.main(["--videos", str(tmp_path / "nope"), "--detector", str(detector_dir),
                    "--out", str(tmp_path / "o")]) == 2
    with pytest.raises(SystemExit):
        ds.main(["--videos", str(tmp_path), "--detector", str(detector_dir), "--out", str(tmp_path / "o"),
                 "--crop", "10,10,5,5"])
