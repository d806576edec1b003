"""difftted.audio: loading any audio or video sound track, and frame-aligned features."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile

from difftted.audio.features import AudioFeatureConfig, AudioFeatureExtractor, load_audio

SR = 16000


def _tone(seconds: float, sr: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    mono = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return np.stack([mono * (1 + 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


def _speech_like(seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    """Noisy voiced bursts at a syllable rate over a room-noise floor (40 dB down), like speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    voiced = np.sin(2 * np.pi * 150 * t) + 0.5 * np.sin(2 * np.pi * 300 * t)
    speech = envelope * (voiced + 0.3 * rng.standard_normal(t.size)) + 0.01 * rng.standard_normal(t.size)
    return (0.2 * speech).astype(np.float32)


# ------------------------------------------------------------------------------------- loading
@pytest.mark.parametrize("fmt,subtype,sr,channels", [
    ("wav", "PCM_16", 44100, 2), ("wav", "FLOAT", 22050, 3), ("flac", "PCM_24", 48000, 1),
    ("ogg", "VORBIS", 32000, 2), ("mp3", "MPEG_LAYER_III", 44100, 2)])
def test_load_audio_formats_rates_and_channels(tmp_path: Path, fmt, subtype, sr, channels):
    original = _tone(1.5, sr, channels=channels)
    path = tmp_path / f"tone.{fmt}"
    try:
        soundfile.write(path, original, sr, subtype=subtype, format=fmt.upper())
    except (soundfile.LibsndfileError, ValueError, TypeError) as err:
        pytest.skip(f"this libsndfile cannot write {fmt}: {err}")
    waveform, out_sr = load_audio(path, SR)
    assert out_sr == SR and waveform.dtype == np.float32 and waveform.ndim == 1
    assert abs(waveform.size - 1.5 * SR) <= 0.02 * SR + 1152  # mp3 encoders pad by a frame
    reference = _tone(1.5, SR, channels=channels).mean(axis=1)
    # lossy codecs shift the signal by their delay: compare loudness, and shape where lossless
    assert np.sqrt(np.mean(waveform ** 2)) == pytest.approx(np.sqrt(np.mean(reference ** 2)), rel=0.1)
    if fmt in ("wav", "flac"):
        n = min(waveform.size, reference.size)
        assert np.corrcoef(waveform[:n], reference[:n])[0, 1] > 0.99


def test_load_audio_keeps_native_rate_when_asked(tmp_path: Path):
    path = tmp_path / "a.wav"
    soundfile.write(path, _tone(0.5, 22050), 22050)
    waveform, sr = load_audio(path, None)
    assert sr == 22050 and waveform.size == int(0.5 * 22050)


def test_load_audio_clear_errors(tmp_path: Path):
    with pytest.raises(ValueError, match="does not exist"):
        load_audio(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.wav"):
        load_audio(empty)
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(ValueError, match="corrupt.flac"):
        load_audio(corrupt)
    header_only = tmp_path / "zero_samples.wav"
    soundfile.write(header_only, np.zeros((0, 1), np.float32), SR)
    with pytest.raises(ValueError, match="zero_samples.wav"):
        load_audio(header_only)


@pytest.mark.shared_data
def test_load_audio_from_videos(shared_data: Path):
    waveform, sr = load_audio(shared_data / "talking/retalking_face1.mp4", SR)
    assert sr == SR and 5.9 * SR < waveform.size < 6.3 * SR  # the track lasts about 6.1 s
    assert np.sqrt(np.mean(waveform ** 2)) > 1e-3  # speech, not silence
    with pytest.raises(ValueError, match="no audio stream"):
        load_audio(shared_data / "ted_silent/ted_driving_384.mp4")


@pytest.mark.shared_data
def test_stereo_44k_file_matches_its_own_resampled_mono(shared_data: Path):
    path = shared_data / "talking/speech_retalking_1.wav"
    native, native_sr = soundfile.read(path, dtype="float32", always_2d=True)
    waveform, sr = load_audio(path, SR)
    assert native_sr != SR and native.shape[1] == 2
    assert waveform.size == pytest.approx(native.shape[0] * SR / native_sr, abs=2)


# ------------------------------------------------------------------------------------ features
@pytest.mark.parametrize("fps", [25.0, 30.0, 29.97, 22.13, 120.0])
def test_one_feature_row_per_frame(fps):
    waveform = _speech_like(3.3)
    extractor = AudioFeatureExtractor()
    features = extractor(waveform, SR, fps)
    assert features.shape == (round(3.3 * fps), extractor.feature_dim)
    assert features.dtype == np.float32
    assert extractor(waveform, SR, fps, num_frames=17).shape == (17, extractor.feature_dim)
    longer = extractor(waveform, SR, fps, num_frames=round(5 * fps))  # silence past the end
    assert longer.shape[0] == round(5 * fps) and np.isfinite(longer).all()


@pytest.mark.parametrize("fps", [29.97, 22.13])
def test_onset_lands_in_the_frame_that_covers_it(fps):
    waveform = np.zeros(3 * SR, np.float32)
    click_time = 1.234
    start = int(click_time * SR)
    waveform[start:start + 200] = np.hanning(200) * np.sin(np.arange(200) * 1.3)
    config = AudioFeatureConfig()
    features = AudioFeatureExtractor(config)(waveform, SR, fps)
    onset = features[:, config.n_mels]
    assert int(np.argmax(onset)) == int(click_time * fps)


def test_feature_dim_and_config_round_trip():
    config = AudioFeatureConfig(n_mels=40, deltas=True)
    assert config.feature_dim == 84
    assert AudioFeatureConfig.from_dict(config.to_dict()) == config
    assert AudioFeatureExtractor(config)(_speech_like(1.0), SR, 25).shape == (25, 84)
    with pytest.raises(ValueError, match="n_melz"):
        AudioFeatureConfig.from_dict({**config.to_dict(), "n_melz": 3})
    with pytest.raises(ValueError, match="hop_length"):
        AudioFeatureConfig(hop_length=0)


@pytest.mark.parametrize("name,signal", [
    ("silence", np.zeros(2 * SR, np.float32)),
    ("clipped", np.clip(8 * _speech_like(2.0), -1, 1)),
    ("overdriven", 5 * np.sign(_speech_like(2.0))),
    ("dc_only", np.full(2 * SR, 0.7, np.float32)),
])
def test_degenerate_signals_give_finite_features(name, signal):
    features = AudioFeatureExtractor()(signal, SR, 25)
    assert features.shape == (50, 66) and np.isfinite(features).all(), name


def test_dc_offset_and_gain_change_little():
    speech = _speech_like(4.0)
    extractor = AudioFeatureExtractor()
    reference = extractor(speech, SR, 25)
    shifted = extractor(speech + 0.4, SR, 25)
    quieter = extractor(0.05 * speech, SR, 25)
    other = extractor(_speech_like(4.0, seed=1)[::-1].copy(), SR, 25)
    assert np.abs(shifted - reference).mean() < 0.05
    assert np.abs(quieter - reference).mean() < 0.05
    assert np.abs(other - reference).mean() > 0.3  # the features do tell different speech apart


def test_invalid_inputs_are_named():
    extractor = AudioFeatureExtractor()
    with pytest.raises(ValueError, match="fps"):
        extractor(_speech_like(1.0), SR, 0)
    with pytest.raises(ValueError, match="NaN"):
        extractor(np.full(SR, np.nan, np.float32), SR, 25)
    with pytest.raises(ValueError, match="waveform"):
        extractor(np.zeros((2, 3, 4)), SR, 25)


@pytest.mark.shared_data
def test_blocks_equal_whole_file_on_real_speech(mocap_audio):
    waveform, sr = mocap_audio
    waveform = waveform[: 20 * sr]
    whole = AudioFeatureExtractor(AudioFeatureConfig(block_seconds=1000.0))(waveform, sr, 29.97)
    blocked = AudioFeatureExtractor(AudioFeatureConfig(block_seconds=1.3))(waveform, sr, 29.97)
    np.testing.assert_allclose(blocked, whole, atol=1e-4)


def test_long_file_in_bounded_memory():
    minutes = 5
    rng = np.random.default_rng(0)
    waveform = (0.1 * rng.standard_normal(minutes * 60 * SR)).astype(np.float32)  # 19 MB
    extractor = AudioFeatureExtractor(AudioFeatureConfig(block_seconds=10.0))
    extractor(waveform[:SR], SR, 25)  # build the mel basis outside the measurement
    tracemalloc.start()
    features = extractor(waveform, SR, 25)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert features.shape == (minutes * 60 * 25, 66)
    # one full-length power spectrogram alone would take 30000 x 257 x 8 B = 62 MB
    assert peak < 25e6, f"peak {peak / 1e6:.1f} MB"
