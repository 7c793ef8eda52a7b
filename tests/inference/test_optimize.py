"""The inference copy of a model (batch norm folded, channels-last) computes what the model computes."""

import numpy as np
import pytest
import torch

from wespk.inference.extractor import EmbeddingExtractor
from wespk.inference.frontend import FeatureFrontend
from wespk.inference.optimize import fold_batch_norm, optimize_for_inference
from wespk.io.audio import load_audio
from wespk.models import get_speaker_model
from tests.conftest import corpus_files

CONFIG = {"dataset_args": {"resample_rate": 16000, "cmn": True,
                           "fbank_args": {"num_mel_bins": 80, "frame_length": 25, "frame_shift": 10}}}


def _with_trained_like_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every batch norm non-trivial statistics and affine parameters, as training would."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(0.3 * torch.randn(n, generator=generator))
            module.running_var.copy_(0.2 + torch.rand(n, generator=generator))
            if module.affine:
                module.weight.data.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.data.copy_(0.2 * torch.randn(n, generator=generator))
    return model.eval()


def _real_feats(count: int):
    frontend = FeatureFrontend(CONFIG)
    feats = []
    for _, _, path in corpus_files(speakers=count, per_speaker=1):
        samples, rate = load_audio(str(path))
        feats.append(frontend(samples[: int(rate * (1.5 + 0.4 * len(feats)))], rate))
    return feats


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("name,args,expected_folds", [
    # stem + 16 blocks x 2 + 3 projection shortcuts
    ("ResNet34", dict(feat_dim=80, embed_dim=64, m_channels=8), 1 + 32 + 3),
    # FCM stem + conv2, 2 stages x 2 blocks x 2, 2 shortcuts
    ("CAMPPlus", dict(feat_dim=80, embed_dim=64), 2 + 8 + 2),
])
def test_folded_model_matches_and_original_untouched(name, args, expected_folds):
    torch.manual_seed(0)
    model = _with_trained_like_norms(get_speaker_model(name)(**args))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded, count = fold_batch_norm(model)
    assert count == expected_folds
    assert folded is not model
    remaining = [m for m in folded.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not remaining  # every 2-D batch norm of these models follows a conv
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key

    feats = _real_feats(3)
    reference = EmbeddingExtractor(model, CONFIG, optimize=False)
    optimized = EmbeddingExtractor(model, CONFIG)
    assert optimized.model is not model
    assert next(p for p in optimized.model.parameters() if p.dim() == 4).is_contiguous(
        memory_format=torch.channels_last)
    # a padded batch (masks) and single utterances (no masks)
    ref_batch, opt_batch = reference.embed_features(feats), optimized.embed_features(feats)
    assert _cosines(ref_batch, opt_batch).min() > 1 - 1e-6
    np.testing.assert_allclose(opt_batch, ref_batch, rtol=1e-4, atol=1e-4 * np.abs(ref_batch).max())
    for f, row in zip(feats, ref_batch):
        assert _cosines(optimized.embed_features([f]), row[None])[0] > 1 - 1e-6


def test_nothing_to_fold_returns_the_model_itself():
    model = get_speaker_model("ECAPA_TDNN_GLOB_c512")(feat_dim=80, embed_dim=64).eval()
    assert fold_batch_norm(model) == (model, 0)  # its batch norms follow a ReLU, not a conv
    assert optimize_for_inference(model, torch.device("cpu")) is model  # no 2-D convolution either


def test_folding_needs_eval_mode():
    model = get_speaker_model("ResNet34")(feat_dim=80, embed_dim=64, m_channels=8).train()
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norm(model)
