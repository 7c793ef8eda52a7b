"""Pooling layers: WeSpeaker's numerics without lengths, valid-frame-only
statistics with lengths."""

import pytest
import torch

from wespk.models.pooling import (ASTP, MQMHASTP, POOLING_LAYERS, TSTP,
                                  build_pooling)

LENGTHS = [50, 37, 12]


def padded(shape, lengths, pad_value=0.0):
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(*shape, generator=generator)
    for i, length in enumerate(lengths):
        x[i, ..., length:] = pad_value
    return x


def make_pooling(name, in_dim):
    torch.manual_seed(0)
    kwargs = {'global_context_att': True} if name == 'ASTP' else {}
    return build_pooling(name, in_dim, **kwargs).eval()


def test_tstp_is_mean_and_unbiased_std_channel_major():
    x = torch.randn(2, 3, 4, 9)
    stats = TSTP(in_dim=12)(x)
    mean = x.mean(dim=-1).reshape(2, 12)
    std = torch.sqrt(x.var(dim=-1, unbiased=True) + 1e-7).reshape(2, 12)
    assert stats.shape == (2, 24)
    assert torch.allclose(stats, torch.cat([mean, std], dim=1), atol=1e-6)
    # channel-major flattening: element (c=1, f=2) sits at 1*4+2
    assert torch.allclose(stats[:, 6], x[:, 1, 2].mean(dim=-1))


def test_astp_global_context_matches_formula():
    pool = make_pooling('ASTP', 6)
    x = torch.randn(2, 6, 11)
    mean = x.mean(dim=-1, keepdim=True).expand_as(x)
    std = torch.sqrt(x.var(dim=-1, keepdim=True) + 1e-7).expand_as(x)
    scores = pool.linear2(torch.tanh(pool.linear1(torch.cat([x, mean, std],
                                                            dim=1))))
    alpha = torch.softmax(scores, dim=2)
    weighted_mean = (alpha * x).sum(dim=2)
    weighted_std = torch.sqrt(((alpha * x**2).sum(dim=2) -
                               weighted_mean**2).clamp(min=1e-7))
    with torch.no_grad():
        expected = torch.cat([weighted_mean, weighted_std], dim=1)
        assert torch.allclose(pool(x), expected, atol=1e-6)
    assert pool.linear1.in_channels == 18


@pytest.mark.parametrize('shape', [(3, 16, 50), (3, 4, 4, 50)])
@pytest.mark.parametrize('name', sorted(POOLING_LAYERS))
def test_lengths_give_the_statistics_of_the_valid_frames(name, shape):
    in_dim = shape[1] * (shape[2] if len(shape) == 4 else 1)
    pool = make_pooling(name, in_dim)
    x = padded(shape, LENGTHS, pad_value=3.0)  # garbage in the padding
    with torch.no_grad():
        batched = pool(x, torch.tensor(LENGTHS))
        for i, length in enumerate(LENGTHS):
            alone = pool(x[i:i + 1, ..., :length])
            assert torch.allclose(batched[i], alone[0], atol=1e-5), (name, i)
    assert batched.shape == (3, pool.out_dim)


@pytest.mark.parametrize('name', sorted(POOLING_LAYERS))
def test_padding_matters_without_lengths(name):
    pool = make_pooling(name, 16)
    x = padded((3, 16, 50), LENGTHS, pad_value=3.0)
    with torch.no_grad():
        unmasked = pool(x)[-1]
        alone = pool(x[-1:, :, :LENGTHS[-1]])[0]
    assert not torch.allclose(unmasked, alone, atol=1e-3)


def test_mqmhastp_parameter_names_and_output_size():
    pool = MQMHASTP(in_dim=64, query_num=2, head_num=4)
    names = set(pool.state_dict())
    assert 'n_query.1.heads_att_trans.3.att_0.weight' in names
    assert 'n_query.0.heads_att_trans.0.att_1.bias' in names
    # d_s > 1: one attention weight per channel of the head
    assert pool.n_query[0].heads_att_trans[0].att_1.out_channels == 16
    assert pool.out_dim == 64 * 2 * 2


def test_astp_attention_is_per_channel_and_named_like_wespeaker():
    pool = ASTP(in_dim=8, bottleneck_dim=4)
    assert set(pool.state_dict()) == {
        'linear1.weight', 'linear1.bias', 'linear2.weight', 'linear2.bias'
    }
    assert pool.linear2.out_channels == 8


def test_unknown_pooling_is_rejected_with_the_known_names():
    with pytest.raises(ValueError, match='TSTP'):
        build_pooling('XYZ', 8)
