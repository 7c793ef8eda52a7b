"""wespk's reimplementation of resemblyzer's front end (mel, volume, trimming).

The tests marked by ``pytest.importorskip("resemblyzer")`` compare with the
real package (installed in the dev environment only); the others check the
front end's own properties.
"""

import logging

import numpy as np
import pytest
import torch

from wespk.features import resemblyzer_mel as rm
from wespk.io.audio import load_audio

logger = logging.getLogger(__name__)


def speech(path):
    samples, sample_rate = load_audio(str(path))
    assert sample_rate == 16000
    return samples


# ------------------------------------------------------------ own properties

def test_slaney_scale_and_filterbank_shape():
    assert rm.hz_to_slaney_mel(1000.0) == pytest.approx(15.0)
    assert rm.hz_to_slaney_mel(500.0) == pytest.approx(7.5)
    freqs = np.array([0.0, 300.0, 999.0, 1000.0, 4000.0, 8000.0])
    assert np.allclose(rm.slaney_mel_to_hz(rm.hz_to_slaney_mel(freqs)), freqs)
    bank = rm.slaney_mel_filterbank(16000, 400, 40)
    assert bank.shape == (40, 201) and bank.dtype == np.float32
    assert (bank >= 0).all() and (bank.max(axis=1) > 0).all()
    # area normalisation: sum of weights * bin spacing is the same order for all bands
    area = bank.sum(axis=1) * 40.0
    assert area.max() / area.min() < 1.5


def test_frame_count_and_trailing_frames_continue_over_zeros(test_flacs):
    wav = speech(test_flacs[0])[:16000 + 123]
    frames = 1 + len(wav) // 160
    mel = rm.resemblyzer_mel(wav)
    with_tail = rm.resemblyzer_mel(wav, trailing_frames=rm.TRAILING_FRAMES)
    assert mel.shape == (frames, 40)
    assert with_tail.shape == (frames + 2, 40)
    assert np.array_equal(with_tail[:frames], mel)
    zero_extended = rm.resemblyzer_mel(np.pad(wav, (0, 160 * 10)))
    assert np.allclose(with_tail, zero_extended[: frames + 2], rtol=1e-6, atol=1e-12)
    assert with_tail[frames:].sum() > 0                  # the tail frames overlap the signal
    assert np.all(zero_extended[frames + 2:] == 0)       # and two of them are all there is


def test_normalize_volume_raises_quiet_audio_only():
    quiet = (0.001 * np.sin(np.arange(16000) * 0.05)).astype(np.float32)
    raised = rm.normalize_volume(quiet, -30.0)
    assert rm.waveform_dbfs(raised) == pytest.approx(-30.0, abs=1e-4)
    loud = (0.5 * np.sin(np.arange(16000) * 0.05)).astype(np.float32)
    assert rm.normalize_volume(loud, -30.0) is loud
    silent = np.zeros(800, dtype=np.float32)
    assert np.array_equal(rm.normalize_volume(silent), silent)


def test_trimming_removes_a_long_pause_between_real_utterances(test_flacs):
    rng = np.random.default_rng(0)
    a = rm.normalize_volume(speech(test_flacs[1]))
    b = rm.normalize_volume(speech(test_flacs[2]))
    pause = (1e-4 * rng.standard_normal(int(1.5 * 16000))).astype(np.float32)
    joined = np.concatenate([a, pause, b])
    trimmed = rm.trim_long_silences(joined)
    assert len(trimmed) % 480 == 0
    assert len(trimmed) < len(joined) - 1.2 * 16000      # most of the 1.5 s pause is gone
    assert len(trimmed) > 0.6 * (len(a) + len(b))       # the speech is not


def test_trimming_keeps_short_pauses_and_a_margin_around_speech():
    rng = np.random.default_rng(2)
    window = 480

    def burst(windows):
        return (0.1 * rng.standard_normal(windows * window)).astype(np.float32)

    def pause(windows):
        return (1e-4 * rng.standard_normal(windows * window)).astype(np.float32)

    short = np.concatenate([burst(32), pause(3), burst(32)])
    assert rm.speech_window_mask(short).all()            # a 90 ms pause is kept whole
    long = np.concatenate([burst(32), pause(20), burst(32)])
    mask = rm.speech_window_mask(long)
    assert mask[:32].all() and mask[52:].all()
    kept_pause = int(mask[32:52].sum())
    # smoothing takes 1-2 windows off each speech edge, dilation adds 3 back:
    # 2 windows (60 ms) of margin after speech and 3 (90 ms) before it
    assert kept_pause == 5
    assert mask[32:34].all() and mask[49:52].all()


def test_trimming_keeps_audio_without_silence_or_too_short():
    rng = np.random.default_rng(1)
    noise = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    assert len(rm.trim_long_silences(noise)) == 16000 - 16000 % 480
    tiny = noise[:300]
    assert np.array_equal(rm.trim_long_silences(tiny), tiny)


def test_frontend_features_shapes_and_resampling(test_flacs):
    wav = speech(test_flacs[3])
    feats = rm.frontend_features(wav, 16000)
    expected = rm.preprocess_wav(wav, 16000)
    assert isinstance(feats, torch.Tensor) and feats.dtype == torch.float32
    assert feats.shape == (1 + len(expected) // 160 + 2, 40)
    from wespk.io.audio import resample
    for rate in (8000, 44100):
        other = rm.frontend_features(resample(wav, 16000, rate), rate)
        assert abs(other.shape[0] - feats.shape[0]) <= 20      # same audio, about the same length
    untrimmed = rm.frontend_features(wav, 16000, {"trim_silence": False, "feature_type": "resemblyzer_mel"})
    assert untrimmed.shape[0] == 1 + len(wav) // 160 + 2


def test_frontend_features_rejects_bad_settings(test_flacs):
    wav = speech(test_flacs[0])
    with pytest.raises(ValueError, match="unknown resemblyzer_mel dataset_args key"):
        rm.frontend_features(wav, 16000, {"fbank_args": {}})
    with pytest.raises(ValueError, match="num_mel_bins = 40"):
        rm.frontend_features(wav, 16000, {"num_mel_bins": 80})
    with pytest.raises(ValueError, match="1-D"):
        rm.preprocess_wav(np.zeros((2, 100), dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="empty"):
        rm.resemblyzer_mel(np.zeros(0, dtype=np.float32))


# ------------------------------------------------------------ against resemblyzer

def test_filterbank_matches_librosa():
    pytest.importorskip("resemblyzer")
    import librosa
    reference = librosa.filters.mel(sr=16000, n_fft=400, n_mels=40)
    ours = rm.slaney_mel_filterbank(16000, 400, 40)
    assert np.abs(ours - reference).max() <= 1e-6 * reference.max()


def test_mel_matches_wav_to_mel_spectrogram(test_flacs):
    resemblyzer = pytest.importorskip("resemblyzer")
    worst = 0.0
    for path in test_flacs[:6]:
        wav = resemblyzer.preprocess_wav(speech(path))
        reference = resemblyzer.wav_to_mel_spectrogram(wav)
        ours = rm.resemblyzer_mel(wav)
        assert ours.shape == reference.shape
        worst = max(worst, float(np.abs(ours - reference).max() / reference.max()))
    logger.info("mel: max |wespk - resemblyzer| / max = %.2e", worst)
    assert worst < 1e-5          # measured 2e-7 (float32 rounding in librosa)


def test_trailing_frames_match_resemblyzer_zero_padding(test_flacs):
    resemblyzer = pytest.importorskip("resemblyzer")
    wav = resemblyzer.preprocess_wav(speech(test_flacs[4]))[:20000 + 159]
    frames = 1 + len(wav) // 160
    reference = resemblyzer.wav_to_mel_spectrogram(np.pad(wav, (0, 1600)))[: frames + 2]
    ours = rm.resemblyzer_mel(wav, trailing_frames=2)
    assert np.abs(ours - reference).max() < 1e-5 * reference.max()


def test_volume_normalisation_matches(test_flacs):
    resemblyzer = pytest.importorskip("resemblyzer")
    for path in test_flacs[:4]:
        wav = speech(path) * 0.05
        assert np.allclose(rm.normalize_volume(wav, -30.0), resemblyzer.normalize_volume(wav, -30, increase_only=True),
                           rtol=1e-5, atol=1e-8)


def test_trimming_keeps_about_as_much_as_webrtcvad(test_flacs):
    resemblyzer = pytest.importorskip("resemblyzer")
    ours = theirs = 0
    for path in test_flacs:
        wav = speech(path)
        theirs += len(resemblyzer.preprocess_wav(wav))
        ours += len(rm.preprocess_wav(wav, 16000))
    logger.info("kept audio: wespk %.2f s, resemblyzer %.2f s", ours / 16000, theirs / 16000)
    assert 0.85 < ours / theirs < 1.2
