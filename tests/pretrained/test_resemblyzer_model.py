"""The converted resemblyzer model against resemblyzer's own VoiceEncoder.

Both are fed the same samples (resemblyzer's ``preprocess_wav`` output), so
any difference comes from the model, the mel front end or the windowing;
wespk's own preprocessing is compared separately.
"""

import logging

import numpy as np
import pytest
import torch
import yaml

from wespk.features import resemblyzer_mel as rm
from wespk.io.audio import load_audio
from wespk.io.checkpoint import load_model_weights
from wespk.models.ge2e_lstm import GE2E_LSTM

logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def converted(resemblyzer_model_dir):
    config = yaml.safe_load((resemblyzer_model_dir / "config.yaml").read_text())
    model = GE2E_LSTM(**config["model_args"])
    load_model_weights(model, str(resemblyzer_model_dir / "avg_model.pt"))
    return model.eval(), config


@pytest.fixture(scope="module")
def voice_encoder():
    resemblyzer = pytest.importorskip("resemblyzer")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield resemblyzer.VoiceEncoder("cpu", verbose=False)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def references(voice_encoder, test_flacs):
    """``[(raw samples, resemblyzer-preprocessed samples, resemblyzer embedding)]``."""
    resemblyzer = pytest.importorskip("resemblyzer")
    out = []
    for path in test_flacs:
        samples = load_audio(str(path))[0]
        wav = resemblyzer.preprocess_wav(samples)
        out.append((samples, wav, voice_encoder.embed_utterance(wav)))
    return out


def wespk_embedding(model, wav):
    feats = torch.from_numpy(rm.resemblyzer_mel(wav, trailing_frames=rm.TRAILING_FRAMES))
    with torch.no_grad():
        return model(feats[None])[0].numpy()


def test_model_dir_contents(resemblyzer_model_dir, converted):
    _, config = converted
    assert config["model"] == "GE2E_LSTM"
    assert config["dataset_args"]["feature_type"] == "resemblyzer_mel"
    assert config["dataset_args"]["resample_rate"] == 16000
    assert config["model_args"]["partial_rate"] == 1.3 and config["model_args"]["trailing_frames"] == 2
    assert config["loss"] == "GE2E" and config["loss_args"]["init_w"] == pytest.approx(70.89, abs=0.01)
    state = torch.load(resemblyzer_model_dir / "avg_model.pt", map_location="cpu")
    assert sorted({k.split(".")[0] for k in state}) == ["embedding", "lstm"]
    assert "Apache License 2.0" in (resemblyzer_model_dir / "README.md").read_text()


def test_partial_slices_identical(converted):
    pytest.importorskip("resemblyzer")
    from resemblyzer.voice_encoder import VoiceEncoder
    model, _ = converted
    lengths = list(range(0, 80000, 41)) + [160 * k + r for k in range(150, 420) for r in (0, 159)]
    for n_samples in lengths:
        _, mel_slices = VoiceEncoder.compute_partial_slices(n_samples, 1.3, 0.75)
        starts = model.partial_window_starts(1 + n_samples // 160)
        assert [s.start for s in mel_slices] == starts, n_samples
        assert all(s.stop - s.start == 160 for s in mel_slices)


def test_embeddings_match_on_the_same_samples(converted, references):
    model, _ = converted
    cosines = [float(reference @ wespk_embedding(model, wav)) for _, wav, reference in references]
    logger.info("cosine wespk vs resemblyzer, same samples: min %.8f", min(cosines))
    assert min(cosines) > 0.9999      # measured 1 - 1.2e-7 on all 121 test utterances


def test_last_window_reaching_past_the_end(converted, voice_encoder, long_flac):
    """Lengths whose last partial window ends 1-2 frames after the last frame,
    where the trailing frames' partial spectra decide the final LSTM steps
    (without them the cosine drops to 0.996)."""
    resemblyzer = pytest.importorskip("resemblyzer")
    model, _ = converted
    wav = resemblyzer.preprocess_wav(load_audio(str(long_flac))[0])
    assert len(wav) > 400 * 160
    checked = 0
    for frames in range(150, 400):
        overhang = model.partial_window_starts(frames)[-1] + 160 - frames
        if not 1 <= overhang <= 2:
            continue
        for remainder in (100, 159):
            piece = wav[: (frames - 1) * 160 + remainder]
            cos = float(voice_encoder.embed_utterance(piece) @ wespk_embedding(model, piece))
            assert cos > 0.9999, (frames, remainder, cos)
            checked += 1
    assert checked >= 8       # 4 lengths x 2 remainders


def test_batch_of_real_utterances_equals_one_at_a_time(converted, test_flacs):
    model, _ = converted
    feats = [rm.frontend_features(load_audio(str(p))[0], 16000) for p in test_flacs[:5]]
    lengths = torch.tensor([f.shape[0] for f in feats])
    batch = torch.zeros(len(feats), int(lengths.max()), 40)
    for i, f in enumerate(feats):
        batch[i, : f.shape[0]] = f
    with torch.no_grad():
        batched = model(batch, lengths)
        for i, f in enumerate(feats):
            alone = model(f[None])[0]
            assert torch.nn.functional.cosine_similarity(batched[i], alone, dim=0) > 0.99999


def test_wespk_preprocessing_stays_close(converted, references):
    """wespk's own volume + energy trimming instead of resemblyzer's webrtcvad."""
    model, _ = converted
    cosines = []
    for samples, _, reference in references:
        with torch.no_grad():
            ours = model(rm.frontend_features(samples, 16000)[None])[0].numpy()
        cosines.append(float(reference @ ours))
    logger.info("cosine with wespk preprocessing: min %.4f median %.4f", min(cosines), np.median(cosines))
    # measured on all 121 test utterances: median 0.997, 5th percentile 0.970, min 0.90
    assert np.median(cosines) > 0.99
    assert min(cosines) > 0.85
