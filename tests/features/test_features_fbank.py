"""fbank: both backends against an independent NumPy implementation of Kaldi's
fbank with WeSpeaker's options, and against each other."""

import numpy as np
import pytest
import soundfile
import torch

from wespk.features.fbank import (FbankBackendError, FbankExtractor, apply_cmn, torch_threads,
                                  available_fbank_backends, compute_fbank, compute_fbank_batch,
                                  num_frames, num_samples_for_frames, resolve_fbank_backend)

BACKENDS = available_fbank_backends()
needs_both = pytest.mark.skipif(BACKENDS != ["kaldifeat", "knf"],
                                reason="needs kaldifeat and kaldi-native-fbank")


def kaldi_fbank_reference(samples: np.ndarray, rate: int, bins: int = 80,
                          window: str = "hamming") -> np.ndarray:
    """Kaldi's fbank computed step by step in float64 (snip_edges, DC removal,
    pre-emphasis 0.97, window, 512-point power spectrum, mel 20 Hz..Nyquist, log)."""
    wave = np.asarray(samples, dtype=np.float64) * 32768.0
    length, shift = int(rate * 0.025), int(rate * 0.010)
    count = 1 + (len(wave) - length) // shift
    frames = np.stack([wave[i * shift:i * shift + length] for i in range(count)])
    frames = frames - frames.mean(axis=1, keepdims=True)
    emphasised = frames.copy()
    emphasised[:, 1:] -= 0.97 * frames[:, :-1]
    emphasised[:, 0] -= 0.97 * frames[:, 0]
    n = np.arange(length)
    if window == "hamming":
        taper = 0.54 - 0.46 * np.cos(2 * np.pi * n / (length - 1))
    else:  # Kaldi's "povey" window
        taper = (0.5 - 0.5 * np.cos(2 * np.pi * n / (length - 1))) ** 0.85
    power = np.abs(np.fft.rfft(emphasised * taper, 512)) ** 2

    def mel(f):
        return 1127.0 * np.log(1.0 + f / 700.0)

    low, high = mel(20.0), mel(rate / 2.0)
    delta = (high - low) / (bins + 1)
    bin_mel = mel(np.arange(256) * rate / 512.0)
    weights = np.zeros((bins, 257))
    for b in range(bins):
        left, centre, right = low + b * delta, low + (b + 1) * delta, low + (b + 2) * delta
        rising = (bin_mel > left) & (bin_mel <= centre)
        falling = (bin_mel > centre) & (bin_mel < right)
        weights[b, :256][rising] = (bin_mel[rising] - left) / (centre - left)
        weights[b, :256][falling] = (right - bin_mel[falling]) / (right - centre)
    return np.log(np.maximum(power @ weights.T, np.finfo(np.float32).eps))


@pytest.fixture(scope="module")
def speech(speech_wavs):
    samples, rate = soundfile.read(speech_wavs[0], dtype="float32")
    return samples[: 3 * rate], rate


@pytest.mark.parametrize("backend", BACKENDS)
def test_fbank_matches_numpy_reference(speech, backend):
    samples, rate = speech
    feats = compute_fbank(torch.from_numpy(samples), rate, backend=backend).numpy()
    reference = kaldi_fbank_reference(samples, rate)
    assert feats.shape == reference.shape == (num_frames(len(samples), rate), 80)
    assert np.abs(feats - reference).max() < 1e-3
    # The window matters: Kaldi's default (povey) would be far off.
    assert np.abs(feats - kaldi_fbank_reference(samples, rate, window="povey")).max() > 1.0


@needs_both
def test_backends_agree(speech_wavs):
    for path in speech_wavs:
        samples, rate = soundfile.read(path, dtype="float32")
        a = compute_fbank(samples, rate, backend="kaldifeat")
        b = compute_fbank(samples, rate, backend="knf")
        assert a.shape == b.shape
        assert (a - b).abs().max().item() < 1e-3


@needs_both
def test_wrapper_equals_direct_kaldifeat_call(speech):
    import kaldifeat
    samples, rate = speech
    opts = kaldifeat.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = "hamming"
    opts.mel_opts.num_bins = 80
    # the wrapper runs kaldifeat on one intra-op thread (FbankExtractor's num_threads): the direct call too, since
    # the last bits of kaldifeat's output depend on the thread count (another test may have changed it)
    with torch_threads(1):
        direct = kaldifeat.Fbank(opts)(torch.from_numpy(samples) * 32768)
    assert torch.equal(compute_fbank(samples, rate, backend="kaldifeat"), direct)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_equals_one_by_one(speech_wavs, backend):
    waves = [soundfile.read(p, dtype="float32")[0][: 16000 + 1000 * i] for i, p in enumerate(speech_wavs)]
    waves.append(np.zeros(100, dtype=np.float32))  # shorter than a frame
    batch = compute_fbank_batch(waves, 16000, backend=backend)
    for wave, feats in zip(waves, batch):
        single = compute_fbank(wave, 16000, backend=backend)
        assert feats.shape == single.shape
        assert torch.allclose(feats, single, atol=1e-4)
    assert batch[-1].shape == (0, 80)


def test_dither_is_reproducible_and_small(speech):
    samples, rate = speech
    clean = compute_fbank(samples, rate)
    one = compute_fbank(samples, rate, dither=1.0, generator=np.random.default_rng(3))
    same = compute_fbank(samples, rate, dither=1.0, generator=np.random.default_rng(3))
    other = compute_fbank(samples, rate, dither=1.0, generator=np.random.default_rng(4))
    assert torch.equal(one, same)
    assert not torch.equal(one, other)
    assert not torch.equal(one, clean)
    # Dither of 1 (16-bit units) barely moves speech frames.
    assert (one - clean).abs().median().item() < 0.05


def test_frame_arithmetic():
    assert num_samples_for_frames(200, 16000) == 32240
    assert num_frames(32240, 16000) == 200
    assert num_frames(32239, 16000) == 199
    assert num_frames(399, 16000) == 0
    assert compute_fbank(np.zeros(399, dtype=np.float32), 16000).shape == (0, 80)


def test_two_dimensional_input_rejected():
    with pytest.raises(ValueError, match="1-D"):
        compute_fbank(np.zeros((2, 1000), dtype=np.float32), 16000)


def test_unknown_backend():
    with pytest.raises(FbankBackendError, match="unknown fbank backend"):
        resolve_fbank_backend("torchaudio")
    assert resolve_fbank_backend("auto") == BACKENDS[0]


def test_extractor_restores_thread_count(speech):
    samples, rate = speech
    before = torch.get_num_threads()
    FbankExtractor(rate)(samples)
    assert torch.get_num_threads() == before


def test_apply_cmn(speech):
    samples, rate = speech
    feats = compute_fbank(samples, rate)
    normalised = apply_cmn(feats)
    assert normalised.mean(dim=0).abs().max().item() < 1e-4
    assert torch.allclose(normalised + feats.mean(dim=0), feats, atol=1e-4)
    scaled = apply_cmn(feats, norm_var=True)
    assert torch.allclose(scaled.std(dim=0, unbiased=False), torch.ones(80), atol=1e-3)
    batch = apply_cmn(torch.stack([feats, feats * 2]))
    assert torch.allclose(batch[0], normalised, atol=1e-5)
    assert apply_cmn(torch.zeros(0, 80)).shape == (0, 80)
