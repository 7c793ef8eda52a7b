"""The name -> constructor registry and the output helper."""

import inspect

import pytest
import torch

from wespk.models import (SPEAKER_MODELS, embedding_from_output,
                          get_speaker_model, list_models)

REQUIRED = [
    'XVEC', 'ECAPA_TDNN_c512', 'ECAPA_TDNN_c1024', 'ECAPA_TDNN_GLOB_c512',
    'ECAPA_TDNN_GLOB_c1024', 'ResNet18', 'ResNet34', 'ResNet50', 'ResNet101',
    'ResNet152', 'ResNet221', 'ResNet293', 'REPVGG_TINY_A0', 'REPVGG_A0',
    'REPVGG_B0', 'REPVGG_D2SE', 'REPVGG_TINY_RSBB_A0', 'CAMPPlus'
]


def test_registry_has_the_wespeaker_names():
    assert set(REQUIRED) <= set(list_models())
    assert list_models() == list(SPEAKER_MODELS)


# GE2E_LSTM is wespk's own (resemblyzer-compatible); it has no pooling layer
@pytest.mark.parametrize('name', sorted(set(SPEAKER_MODELS) - {'GE2E_LSTM'}))
def test_constructors_take_wespeaker_model_args(name):
    parameters = inspect.signature(get_speaker_model(name)).parameters
    assert {'feat_dim', 'embed_dim', 'pooling_func'} <= set(parameters)


def test_unknown_model_lists_known_names():
    with pytest.raises(ValueError) as error:
        get_speaker_model('ResNet35')
    assert 'ResNet34' in str(error.value) and 'CAMPPlus' in str(error.value)


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        SPEAKER_MODELS['Mine'] = object


def test_embedding_from_output():
    a, b = torch.zeros(2, 3), torch.ones(2, 3)
    assert embedding_from_output((a, b)) is b
    assert embedding_from_output(a) is a


@pytest.mark.parametrize('name, expected_dim', [('ResNet18', 64),
                                                ('ResNet50', 64)])
def test_resnet_builds_with_wespeaker_dimensions(name, expected_dim):
    model = get_speaker_model(name)(feat_dim=40, embed_dim=expected_dim,
                                    two_emb_layer=True).eval()
    with torch.no_grad():
        embed_a, embed_b = model(torch.randn(1, 40, 40))
    assert embed_a.shape == embed_b.shape == (1, expected_dim)
    expansion = 4 if name == 'ResNet50' else 1
    assert model.seg_1.in_features == int(40 / 8) * 32 * 8 * expansion * 2
