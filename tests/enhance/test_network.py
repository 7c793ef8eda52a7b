"""The rdm_mlp network, the diffusion schedule and the enhancer dir."""

import math

import numpy as np
import pytest
import torch

from tests.enhance.helpers import EMBED_DIM, make_model_dir, perturbed_enhancer
from wespk.enhance.enhancer import Enhancer, EnhancerError, key_noise, load_enhancer
from wespk.enhance.network import RdmMLP, timestep_embedding
from wespk.enhance.schedule import DiffusionSchedule


@pytest.mark.parametrize("dim, count", [(512, 9_725_440), (256, 2_437_888)])
def test_parameter_counts(dim, count):
    assert sum(p.numel() for p in RdmMLP(dim).parameters()) == count


def test_state_dict_names():
    names = set(RdmMLP(4, num_layers=1).state_dict())
    assert {"input_proj.weight", "time_embed.0.weight", "time_embed.2.bias", "res_blocks.0.in_layers.0.weight",
            "res_blocks.0.in_layers.2.weight", "res_blocks.0.emb_layers.1.weight",
            "res_blocks.0.out_layers.3.weight", "out.0.weight", "out.2.bias"} <= names


def test_timestep_embedding_is_cos_then_sin():
    emb = timestep_embedding(torch.tensor([0, 7]), 8)
    freqs = [math.exp(-math.log(1e4) * i / 4) for i in range(4)]
    expected = [math.cos(7 * f) for f in freqs] + [math.sin(7 * f) for f in freqs]
    assert emb[0].tolist() == [1.0] * 4 + [0.0] * 4
    assert emb[1].tolist() == pytest.approx(expected, abs=1e-6)


def test_schedule_is_scaled_linear():
    schedule = DiffusionSchedule(EMBED_DIM)
    assert abs(schedule.alpha_bar(50) - 0.99084) < 1e-5
    betas = (torch.linspace(1e-4 ** 0.5, 0.02 ** 0.5, 1000, dtype=torch.float64) ** 2)
    assert schedule.alpha_bar(999) == pytest.approx(float(torch.prod(1 - betas)), rel=1e-4)
    assert schedule.timesteps_from(50, 5) == [50, 40, 30, 20, 10]
    with pytest.raises(ValueError, match="steps must be"):
        schedule.timesteps_from(50, 51)
    with pytest.raises(ValueError, match="t must be"):
        schedule.timesteps_from(1000, 1)


@pytest.mark.parametrize("steps", [1, 4])
def test_untrained_enhancer_outputs_zero(steps):
    enhancer = Enhancer.create(EMBED_DIM)
    embeddings = np.random.default_rng(0).standard_normal((3, EMBED_DIM)).astype(np.float32)
    out = enhancer.enhance(["a", "b", "c"], embeddings, seed=1, t=50, steps=steps)
    assert out.shape == (3, EMBED_DIM) and not out.any()


def test_output_is_clipped():
    enhancer = perturbed_enhancer()
    with torch.no_grad():
        enhancer.network.out[2].bias.fill_(1e3)
    out = enhancer.enhance(["a"], np.ones((1, EMBED_DIM), np.float32), seed=0)
    assert np.allclose(out, 3 * math.sqrt(EMBED_DIM))


def test_noise_depends_on_seed_and_key_only():
    assert torch.equal(key_noise(3, "spk1-utt1", 8), key_noise(3, "spk1-utt1", 8))
    assert not torch.equal(key_noise(3, "spk1-utt1", 8), key_noise(4, "spk1-utt1", 8))
    assert not torch.equal(key_noise(3, "spk1-utt1", 8), key_noise(3, "spk1-utt2", 8))


@pytest.mark.parametrize("steps", [1, 3])
def test_enhancement_independent_of_batching(steps):
    enhancer = perturbed_enhancer()
    rng = np.random.default_rng(1)
    embeddings = rng.standard_normal((7, EMBED_DIM)).astype(np.float32) * 5
    keys = [f"utt{i}" for i in range(7)]
    whole = enhancer.enhance(keys, embeddings, seed=11, steps=steps)
    singles = np.concatenate([enhancer.enhance([k], e[None], seed=11, steps=steps) for k, e in zip(keys, embeddings)])
    reordered = enhancer.enhance(keys[::-1], embeddings[::-1], seed=11, steps=steps)[::-1]
    assert np.abs(whole).max() > 0.1   # not a trivial output
    # float32 ark values of magnitude ~sqrt(D): 1e-5 is far below what scoring can see
    np.testing.assert_allclose(singles, whole, rtol=0, atol=1e-5)
    np.testing.assert_allclose(reordered, whole, rtol=0, atol=1e-5)
    other_seed = enhancer.enhance(keys, embeddings, seed=12, steps=steps)
    assert np.abs(other_seed - whole).max() > 1e-3
    # scale-invariant: inputs are normalised to norm sqrt(D) first
    np.testing.assert_allclose(enhancer.enhance(keys, embeddings * 0.01, seed=11, steps=steps), whole, atol=1e-5)


def test_round_trip_and_backbone_check(tmp_path):
    backbone = make_model_dir(tmp_path / "backbone", seed=0)
    other = make_model_dir(tmp_path / "other", seed=1)
    enhancer = perturbed_enhancer(backbone)
    enhancer.save(str(tmp_path / "enh"))
    embeddings = np.random.default_rng(2).standard_normal((4, EMBED_DIM)).astype(np.float32)
    keys = list("wxyz")
    loaded = load_enhancer(str(tmp_path / "enh"), str(backbone))
    np.testing.assert_array_equal(loaded.enhance(keys, embeddings, 5), enhancer.enhance(keys, embeddings, 5))
    assert loaded.backbone.name == "ResNet34" and loaded.backbone.embed_dim == EMBED_DIM
    with pytest.raises(EnhancerError, match=r"other: the enhancer was trained for ResNet34 with model file sha256"):
        load_enhancer(str(tmp_path / "enh"), str(other))
    with pytest.raises(EnhancerError, match=r"takes 16-dimensional embeddings, got shape \(2, 8\)"):
        loaded.enhance(["a", "b"], np.zeros((2, 8), np.float32), 0)
    with pytest.raises(EnhancerError, match="not an enhancer dir"):
        Enhancer.load(str(tmp_path / "backbone"))
