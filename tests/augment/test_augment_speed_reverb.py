"""Speed perturbation and resampling; reverberation keeps the direct path aligned."""

import numpy as np
import pytest
import soundfile
from scipy.signal import correlate

from wespk.augment.reverb import RirSet, reverberate
from wespk.augment.speed import speed_perturb, speed_ratio
from wespk.io.audio import Resampler, resample, resample_ratio

FRAME_SHIFT = 160  # one 10 ms frame at 16 kHz


@pytest.mark.parametrize("speed", [1.1, 0.9])
def test_speed_changes_length_by_one_over_speed(speech_wavs, speed):
    for path in speech_wavs:
        samples, rate = soundfile.read(path, dtype="float32")
        out = speed_perturb(samples, speed)
        assert abs(len(out) - len(samples) / speed) <= FRAME_SHIFT
        assert out.dtype == np.float32


def test_speed_scales_pitch():
    rate = 16000
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 1000.0 * t).astype(np.float32)
    out = speed_perturb(tone, 1.1)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak_hz = np.argmax(spectrum) * rate / len(out)
    assert abs(peak_hz - 1100.0) < 3.0


def test_speed_one_is_identity(speech_wavs):
    samples, _ = soundfile.read(speech_wavs[0], dtype="float32")
    assert speed_perturb(samples, 1.0) is samples


def test_ratios():
    assert speed_ratio(1.1) == (10, 11)
    assert speed_ratio(0.9) == (10, 9)
    assert resample_ratio(44100, 16000) == (160, 441)
    assert resample_ratio(8000, 16000) == (2, 1)


def test_resample_keeps_a_tone_and_length():
    t = np.arange(44100) / 44100
    tone = np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
    out = resample(tone, 44100, 16000)
    assert len(out) == 16000
    expected = np.sin(2 * np.pi * 440.0 * np.arange(16000) / 16000)
    assert np.abs(out[200:-200] - expected[200:-200]).max() < 1e-2


def test_resampler_equals_one_shot_functions(speech_wavs):
    samples, _ = soundfile.read(speech_wavs[2], dtype="float32")
    resampler = Resampler()
    assert np.array_equal(speed_perturb(samples, 1.1, resampler), speed_perturb(samples, 1.1))
    assert resampler.taps(10, 11) is resampler.taps(10, 11)
    assert np.array_equal(resampler.resample(samples, 16000, 8000), resample(samples, 16000, 8000))


def test_reverb_with_a_known_rir_is_exact(speech_wavs):
    speech, _ = soundfile.read(speech_wavs[0], dtype="float32")
    rir = np.zeros(400)
    rir[37], rir[137], rir[300] = 1.0, 0.5, -0.25
    out = reverberate(speech, rir)
    expected = speech.astype(np.float64).copy()
    expected[100:] += 0.5 * speech[:-100]
    expected[263:] -= 0.25 * speech[:-263]
    expected *= np.sqrt(np.mean(speech.astype(np.float64) ** 2) / np.mean(expected ** 2))
    assert len(out) == len(speech)
    assert np.abs(out - expected).max() < 1e-4


def test_reverb_keeps_direct_path_aligned_and_power(speech_wavs, noise_and_rirs):
    rirs = RirSet(noise_and_rirs[1])
    assert len(rirs) == 4
    speech, rate = soundfile.read(speech_wavs[1], dtype="float32")
    for key in rirs.keys:
        rir = rirs.load(key, rate)
        peak = int(np.argmax(np.abs(rir)))
        assert peak > 10  # simulated RIRs start with the propagation delay
        # An impulse comes out where it went in: the direct path is at lag 0.
        impulse = np.zeros(3000, dtype=np.float32)
        impulse[1234] = 1.0
        assert int(np.argmax(np.abs(reverberate(impulse, rir)))) == 1234
        # Real speech: the reverberant signal is the full convolution read
        # from the direct path on, at the input's power.
        out = reverberate(speech, rir)
        size = len(speech) + len(rir) - 1  # linear convolution by NumPy's FFT
        spectrum = np.fft.rfft(speech.astype(np.float64), size) * np.fft.rfft(rir.astype(np.float64), size)
        full = np.fft.irfft(spectrum, size)[peak:peak + len(speech)]
        full *= np.sqrt(np.mean(speech.astype(np.float64) ** 2) / np.mean(full ** 2))
        assert len(out) == len(speech)
        assert np.abs(out - full).max() < 1e-4
        power_ratio = np.mean(out.astype(np.float64) ** 2) / np.mean(speech.astype(np.float64) ** 2)
        assert abs(10 * np.log10(power_ratio)) < 0.01
        # Pre-emphasised (whitened) signals correlate best at lag 0 when the
        # direct path is the clearly strongest tap.
        second = np.sort(np.abs(rir))[-2] / np.abs(rir).max()
        if second < 0.7:
            xcorr = correlate(np.diff(out), np.diff(speech), mode="full", method="fft")
            assert abs(int(np.argmax(xcorr)) - (len(speech) - 2)) <= 1


def test_reverb_rejects_empty_rir():
    with pytest.raises(ValueError, match="no energy"):
        reverberate(np.ones(100, dtype=np.float32), np.zeros(10))
