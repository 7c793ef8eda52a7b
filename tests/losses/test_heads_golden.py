"""Projection heads reproduce WeSpeaker's logits (golden proj_*).

Each test runs on the small heads committed in tests/golden/heads (every
clone has them) and on the shared golden heads when present (required
under ``CI=true``); the files are laid out alike.
"""

import json

import pytest
import torch

from tests.conftest import COMMITTED_GOLDEN, full_golden_or_skip
from wespk.losses import margin_heads

HEADS = [
    'AddMarginProduct', 'ArcMarginProduct', 'ArcMarginProduct_easy',
    'ArcMarginProduct_intertopk_subcenter',
    'ArcMarginProduct_intertopk_subcenter_noupdate', 'Linear_softmax',
    'SphereFace2', 'SphereProduct'
]
# WeSpeaker class name -> ours, where they differ
CLASSES = {'Linear': margin_heads.SoftmaxHead}
TOLERANCE = 1e-4


@pytest.fixture(scope='module', params=['committed', 'full'])
def heads_dir(request):
    if request.param == 'committed':
        return COMMITTED_GOLDEN / 'heads'
    return full_golden_or_skip()


def load(heads_dir, name):
    return torch.load(heads_dir / name, weights_only=True)


def build_head(heads_dir, name):
    """Head built as the JSON says: kwargs, weights file, update() call."""
    meta = json.loads((heads_dir / f'proj_{name}.json').read_text())
    cls = CLASSES.get(meta['class']) or getattr(margin_heads, meta['class'])
    head = cls(**meta['constructor_kwargs'])
    head.load_state_dict(load(heads_dir, meta['weights']['file']),
                         strict=True)
    if meta['update_called']:
        assert 'update(margin=0.2)' in meta['update_called']
        head.update(0.2)
    for field, value in meta['fields_before_first_forward'].items():
        if hasattr(head, field):
            assert getattr(head, field) == pytest.approx(value), field
    return head.train(), meta


def num_classes(meta):
    kwargs = meta['constructor_kwargs']
    return kwargs.get('out_features', kwargs.get('class_num'))


@pytest.mark.parametrize('name', HEADS)
def test_logits_match_wespeaker(heads_dir, name):
    head, meta = build_head(heads_dir, name)
    inputs = load(heads_dir, meta['input']['file'])
    output = head(inputs['embed'], inputs['label'])
    if name == 'SphereFace2':
        output, loss = output
        extra = load(heads_dir, meta['extra_file'])
        assert abs(loss.item() - extra['loss_call1'].item()) <= TOLERANCE
    reference = load(heads_dir, meta['output']['file'])
    assert output.shape == reference.shape == (8, num_classes(meta))
    assert (output - reference).abs().max().item() <= TOLERANCE


def test_sphereproduct_second_call_anneals(heads_dir):
    head, meta = build_head(heads_dir, 'SphereProduct')
    inputs = load(heads_dir, meta['input']['file'])
    first = head(inputs['embed'], inputs['label'])
    second = head(inputs['embed'], inputs['label'])
    reference = load(heads_dir, meta['extra_file'])['output_call2']
    assert (second - reference).abs().max().item() <= TOLERANCE
    assert not torch.allclose(first, second)


def test_intertopk_penalty_is_inactive_without_update(heads_dir):
    """WeSpeaker quirk: margin given to the constructor, no update() -> no
    top-k penalty; the two golden outputs differ exactly there."""
    updated, meta = build_head(heads_dir,
                               'ArcMarginProduct_intertopk_subcenter')
    inputs = load(heads_dir, meta['input']['file'])
    not_updated, _ = build_head(
        heads_dir, 'ArcMarginProduct_intertopk_subcenter_noupdate')
    assert not_updated.cos_mp == 1.0 and not_updated.sin_mp == 0.0
    difference = (updated(inputs['embed'], inputs['label']) -
                  not_updated(inputs['embed'], inputs['label'])).abs()
    changed_per_row = (difference > 1e-6).sum(dim=1)
    assert torch.all(changed_per_row == meta['constructor_kwargs']['k_top'])
