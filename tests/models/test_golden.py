"""WeSpeaker checkpoint compatibility: load the golden state_dicts strictly and
reproduce WeSpeaker's outputs (tolerances from shared/golden/README.md)."""

import json

import pytest
import torch

from wespk.models import embedding_from_output, get_speaker_model
from wespk.models.repvgg import convert_to_deploy

# model -> fp32 max-abs tolerance (README section 1)
TOLERANCE = {
    'ResNet34': 1e-4,
    'ECAPA_TDNN_GLOB_c512': 1e-4,
    'XVEC': 1e-4,
    'CAMPPlus': 5e-4,
    'REPVGG_TINY_A0': 1e-4,
}
# output file suffix -> input file (relative to the golden folder)
INPUTS = {
    'output': '{model}.input.pt',
    'output_T237': 'extra_input_T237.pt',
}


def load(golden_dir, name):
    return torch.load(golden_dir / name, weights_only=True)


def build_golden_model(golden_dir, name, kwargs_from=None):
    """Build ``name`` with the JSON kwargs and load ``<name>.pt`` strictly."""
    meta = json.loads((golden_dir / f'{kwargs_from or name}.json').read_text())
    model = get_speaker_model(name)(**meta['constructor_kwargs'])
    model.load_state_dict(load(golden_dir, f'{name}.pt'), strict=True)
    return model.eval(), meta


@pytest.fixture(scope='module')
def golden_models(golden_dir):
    """Each golden model built once for the module."""
    return {name: build_golden_model(golden_dir, name) for name in TOLERANCE}


def run(model, x):
    with torch.no_grad():
        return model(x)


@pytest.fixture(scope='module')
def golden_outputs(golden_dir, golden_models):
    """Raw forward outputs of every golden model on both golden inputs."""
    return {(name, suffix): run(model, load(golden_dir, INPUTS[suffix].format(
        model=name)))
            for name, (model, _) in golden_models.items()
            for suffix in INPUTS}


@pytest.mark.parametrize('name', sorted(TOLERANCE))
def test_state_dict_keys_and_shapes_match_wespeaker(golden_models, name):
    model, meta = golden_models[name]
    expected = [(key, shape) for key, shape, _ in meta['state_dict']]
    actual = [(key, list(value.shape))
              for key, value in model.state_dict().items()]
    assert actual == expected


@pytest.mark.parametrize('suffix', sorted(INPUTS))
@pytest.mark.parametrize('name', sorted(TOLERANCE))
def test_forward_matches_wespeaker(golden_dir, golden_outputs, name, suffix):
    reference = load(golden_dir, f'{name}.{suffix}.pt')
    embedding = embedding_from_output(golden_outputs[name, suffix])
    assert embedding.shape == reference.shape
    assert (embedding - reference).abs().max().item() <= TOLERANCE[name]


def test_forward_output_structure(golden_outputs):
    """The raw outputs are shaped like WeSpeaker's (README table)."""
    resnet = golden_outputs['ResNet34', 'output']
    ecapa = golden_outputs['ECAPA_TDNN_GLOB_c512', 'output']
    xvec = golden_outputs['XVEC', 'output']
    campplus = golden_outputs['CAMPPlus', 'output']
    repvgg = golden_outputs['REPVGG_TINY_A0', 'output']
    assert resnet[0].shape == () and resnet[0].item() == 0.0
    assert ecapa[0].shape == (2, 512, 200) and ecapa[1].shape == (2, 192)
    assert xvec[0].shape == (2, 512) and xvec[1].shape == (2, 512)
    assert not torch.allclose(xvec[0], xvec[1])  # embedding is seg_2's output
    assert isinstance(campplus, torch.Tensor) and campplus.shape == (2, 512)
    assert isinstance(repvgg, torch.Tensor) and repvgg.shape == (2, 256)


@pytest.fixture(scope='module')
def repvgg_deploy(golden_models):
    return convert_to_deploy(golden_models['REPVGG_TINY_A0'][0])


@pytest.fixture(scope='module')
def repvgg_deploy_outputs(golden_dir, repvgg_deploy):
    return {
        suffix: run(repvgg_deploy,
                    load(golden_dir,
                         INPUTS[suffix].format(model='REPVGG_TINY_A0')))
        for suffix in INPUTS
    }


def test_repvgg_fused_tensors_match_spotcheck(golden_dir, repvgg_deploy):
    spotcheck = load(golden_dir, 'REPVGG_TINY_A0_deploy.fused_spotcheck.pt')
    state = repvgg_deploy.state_dict()
    assert len(spotcheck) == 40
    for key, value in spotcheck.items():
        assert (state[key] - value).abs().max().item() <= 1e-5, key


def test_repvgg_deploy_keys_match_wespeaker(golden_dir, repvgg_deploy):
    meta = json.loads(
        (golden_dir / 'REPVGG_TINY_A0_deploy.json').read_text())
    expected = [(key, shape) for key, shape, _ in meta['state_dict']]
    actual = [(key, list(value.shape))
              for key, value in repvgg_deploy.state_dict().items()]
    assert actual == expected


def test_repvgg_deploy_loads_into_model_built_with_deploy_true(
        golden_dir, repvgg_deploy):
    meta = json.loads(
        (golden_dir / 'REPVGG_TINY_A0_deploy.json').read_text())
    assert meta['constructor_kwargs']['deploy'] is True
    model = get_speaker_model('REPVGG_TINY_A0')(**meta['constructor_kwargs'])
    model.load_state_dict(repvgg_deploy.state_dict(), strict=True)
    x = load(golden_dir, 'extra_input_T237.pt')[:, :64]
    assert torch.equal(run(model.eval(), x), run(repvgg_deploy, x))


@pytest.mark.parametrize('suffix', sorted(INPUTS))
def test_repvgg_deploy_matches_wespeaker_and_train_form(
        golden_dir, golden_outputs, repvgg_deploy_outputs, suffix):
    reference = load(golden_dir, f'REPVGG_TINY_A0_deploy.{suffix}.pt')
    deployed = repvgg_deploy_outputs[suffix]
    trained = golden_outputs['REPVGG_TINY_A0', suffix]
    assert (deployed - reference).abs().max().item() <= 1e-4
    assert (deployed - trained).abs().max().item() <= 1e-4


def test_convert_to_deploy_leaves_train_model_intact(golden_models,
                                                     repvgg_deploy):
    train_keys = golden_models['REPVGG_TINY_A0'][0].state_dict().keys()
    assert any('rbr_dense' in key for key in train_keys)
    assert not any('rbr_dense' in key
                   for key in repvgg_deploy.state_dict().keys())
