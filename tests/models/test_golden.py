"""WeSpeaker checkpoint compatibility: load the golden state_dicts strictly and
reproduce WeSpeaker's outputs (tolerances from the golden READMEs).

Every test runs twice (``golden`` fixture, tests/models/conftest.py): on the
small models committed in tests/golden/models, which every clone has, and
on the full-size shared golden models, when they are present (required
under ``CI=true``).
"""

import json

import pytest
import torch

from tests.models.conftest import TOLERANCE, CommittedGolden
from wespk.models import embedding_from_output, get_speaker_model
from wespk.models.repvgg import RepVGG, convert_to_deploy

SUFFIXES = ['output', 'output_T237']


@pytest.fixture(scope='module')
def golden_models(golden):
    """Each golden model built once per golden set."""
    return {name: golden.build(name) for name in TOLERANCE}


def run(model, x):
    with torch.no_grad():
        return model(x)


@pytest.fixture(scope='module')
def golden_outputs(golden, golden_models):
    """Raw forward outputs of every golden model on both golden inputs."""
    return {(name, suffix): run(model, golden.input(name, suffix))
            for name, (model, _) in golden_models.items()
            for suffix in SUFFIXES}


@pytest.mark.parametrize('name', sorted(TOLERANCE))
def test_state_dict_keys_and_shapes_match_wespeaker(golden, golden_models, name):
    model, _ = golden_models[name]
    actual = [(key, list(value.shape))
              for key, value in model.state_dict().items()]
    assert actual == golden.reference_keys(name)


@pytest.mark.parametrize('suffix', SUFFIXES)
@pytest.mark.parametrize('name', sorted(TOLERANCE))
def test_forward_matches_wespeaker(golden, golden_outputs, name, suffix):
    reference = golden.output(name, suffix)
    embedding = embedding_from_output(golden_outputs[name, suffix])
    assert embedding.shape == reference.shape
    assert (embedding - reference).abs().max().item() <= TOLERANCE[name]


def shapes(output):
    if isinstance(output, (tuple, list)):
        return [list(o.shape) for o in output]
    return list(output.shape)


def test_forward_output_structure(golden, golden_models, golden_outputs):
    """The raw outputs are shaped like WeSpeaker's (README table)."""
    resnet = golden_outputs['ResNet34', 'output']
    xvec = golden_outputs['XVEC', 'output']
    assert resnet[0].shape == () and resnet[0].item() == 0.0
    assert not torch.allclose(xvec[0], xvec[1])  # embedding is seg_2's output
    assert isinstance(golden_outputs['CAMPPlus', 'output'], torch.Tensor)
    assert isinstance(golden_outputs['REPVGG_TINY_A0', 'output'], torch.Tensor)
    if isinstance(golden, CommittedGolden):
        for name, (_, meta) in golden_models.items():
            assert shapes(golden_outputs[name, 'output']) == meta['forward_output_shapes'], name
        return
    ecapa = golden_outputs['ECAPA_TDNN_GLOB_c512', 'output']
    assert ecapa[0].shape == (2, 512, 200) and ecapa[1].shape == (2, 192)
    assert xvec[0].shape == (2, 512) and xvec[1].shape == (2, 512)
    assert golden_outputs['CAMPPlus', 'output'].shape == (2, 512)
    assert golden_outputs['REPVGG_TINY_A0', 'output'].shape == (2, 256)


@pytest.fixture(scope='module')
def repvgg_deploy(golden_models):
    return convert_to_deploy(golden_models['REPVGG_TINY_A0'][0])


@pytest.fixture(scope='module')
def deploy_meta(golden):
    return json.loads(golden.file('REPVGG_TINY_A0_deploy.json').read_text())


@pytest.fixture(scope='module')
def repvgg_deploy_outputs(golden, repvgg_deploy):
    return {suffix: run(repvgg_deploy, golden.input('REPVGG_TINY_A0', suffix))
            for suffix in SUFFIXES}


def test_repvgg_fused_tensors_match_spotcheck(golden, repvgg_deploy, deploy_meta):
    spotcheck = torch.load(golden.file('REPVGG_TINY_A0_deploy.fused_spotcheck.pt'), weights_only=True)
    state = repvgg_deploy.state_dict()
    assert len(spotcheck) == deploy_meta.get('spotcheck_tensors', 40)
    for key, value in spotcheck.items():
        assert (state[key] - value).abs().max().item() <= 1e-5, key


def test_repvgg_deploy_keys_match_wespeaker(repvgg_deploy, deploy_meta):
    expected = [(entry[0], entry[1]) for entry in deploy_meta['state_dict']]
    actual = [(key, list(value.shape))
              for key, value in repvgg_deploy.state_dict().items()]
    assert actual == expected


def test_repvgg_deploy_loads_into_model_built_with_deploy_true(golden, repvgg_deploy, deploy_meta):
    assert deploy_meta['constructor_kwargs']['deploy'] is True
    build = RepVGG if isinstance(golden, CommittedGolden) else get_speaker_model('REPVGG_TINY_A0')
    model = build(**deploy_meta['constructor_kwargs'])
    model.load_state_dict(repvgg_deploy.state_dict(), strict=True)
    x = golden.input('REPVGG_TINY_A0', 'output_T237')[:, :64]
    assert torch.equal(run(model.eval(), x), run(repvgg_deploy, x))


@pytest.mark.parametrize('suffix', SUFFIXES)
def test_repvgg_deploy_matches_wespeaker_and_train_form(
        golden, golden_outputs, repvgg_deploy_outputs, suffix):
    reference = golden.output('REPVGG_TINY_A0_deploy', suffix)
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


def test_committed_subset_is_small_and_complete(committed_golden):
    """The model and head subsets stay a few hundred KB, and every family has its references."""
    files = [p for part in ('models', 'heads') for p in (committed_golden / part).iterdir()]
    assert sum(p.stat().st_size for p in files) < 600_000
    names = {p.name for p in files}
    for name in TOLERANCE:
        assert {f'{name}.json', f'{name}.pt', f'{name}.output.pt', f'{name}.output_T237.pt'} <= names
