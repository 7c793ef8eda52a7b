"""Energy VAD on real speech padded with near-silence; SpecAugment masks."""

import numpy as np
import pytest
import soundfile
import torch

from wespk.features.spec_augment import spec_augment
from wespk.features.vad import VoiceActivityDetector, energy_speech_segments, silero_vad_available


def test_energy_vad_removes_added_silence(speech_wavs):
    speech, rate = soundfile.read(speech_wavs[1], dtype="float32")
    rng = np.random.default_rng(0)
    quiet = lambda n: (rng.standard_normal(n) * 1e-4).astype(np.float32)  # noqa: E731
    padded = np.concatenate([quiet(rate), speech, quiet(2 * rate)])
    kept = VoiceActivityDetector("energy")(padded, rate)
    # At most the speech (plus frame edges) survives, and nearly all of it.
    assert len(kept) <= len(speech) + int(0.1 * rate)
    assert len(kept) >= 0.6 * len(speech)
    segments = energy_speech_segments(padded, rate)
    assert segments[0][0] >= rate - int(0.1 * rate)
    assert segments[-1][1] <= rate + len(speech) + int(0.1 * rate)


def test_energy_vad_keeps_all_when_nothing_is_found():
    silence = np.zeros(16000, dtype=np.float32)
    assert len(VoiceActivityDetector("energy")(silence, 16000)) == 16000
    assert energy_speech_segments(np.zeros(100, dtype=np.float32), 16000) == []


def test_vad_options_are_checked():
    with pytest.raises(ValueError, match="unknown energy VAD options"):
        VoiceActivityDetector("energy", {"threshold": 0.5})
    with pytest.raises(ValueError, match="unknown VAD method"):
        VoiceActivityDetector("webrtc")


@pytest.mark.skipif(silero_vad_available(), reason="silero-vad is installed")
def test_silero_needs_its_package():
    with pytest.raises(ValueError, match="silero-vad"):
        VoiceActivityDetector("silero")


@pytest.mark.skipif(not silero_vad_available(), reason="silero-vad is not installed")
def test_silero_finds_speech(speech_wavs):
    speech, rate = soundfile.read(speech_wavs[1], dtype="float32")
    padded = np.concatenate([np.zeros(rate, dtype=np.float32), speech])
    segments = VoiceActivityDetector("silero").speech_segments(padded, rate)
    assert segments and segments[0][0] >= rate - int(0.2 * rate)


def test_spec_augment_masks_are_bounded_and_reproducible():
    feats = torch.randn(200, 80) + 5.0  # no zeros before masking
    original = feats.clone()
    a = spec_augment(feats, np.random.default_rng(1), num_t_mask=2, num_f_mask=2, max_t=10, max_f=8)
    b = spec_augment(feats, np.random.default_rng(1), num_t_mask=2, num_f_mask=2, max_t=10, max_f=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, feats)
    zero_rows = int((a == 0).all(dim=1).sum())
    zero_cols = int((a == 0).all(dim=0).sum())
    assert 1 <= zero_rows <= 20
    assert 1 <= zero_cols <= 16
    untouched = (a != 0)
    assert torch.equal(a[untouched], feats[untouched])
    assert torch.equal(feats, original)  # the input is not modified
