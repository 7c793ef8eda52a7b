"""Projection heads reproduce WeSpeaker's logits (shared/golden proj_*)."""

import json

import pytest
import torch

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


def load(golden_dir, name):
    return torch.load(golden_dir / name, weights_only=True)


def build_head(golden_dir, name):
    """Head built as the JSON says: kwargs, weights file, update() call."""
    meta = json.loads((golden_dir / f'proj_{name}.json').read_text())
    cls = CLASSES.get(meta['class']) or getattr(margin_heads, meta['class'])
    head = cls(**meta['constructor_kwargs'])
    head.load_state_dict(load(golden_dir, meta['weights']['file']),
                         strict=True)
    if meta['update_called']:
        assert 'update(margin=0.2)' in meta['update_called']
        head.update(0.2)
    for field, value in meta['fields_before_first_forward'].items():
        if hasattr(head, field):
            assert getattr(head, field) == pytest.approx(value), field
    return head.train(), meta


@pytest.mark.parametrize('name', HEADS)
def test_logits_match_wespeaker(golden_dir, name):
    head, meta = build_head(golden_dir, name)
    inputs = load(golden_dir, meta['input']['file'])
    output = head(inputs['embed'], inputs['label'])
    if name == 'SphereFace2':
        output, loss = output
        extra = load(golden_dir, meta['extra_file'])
        assert abs(loss.item() - extra['loss_call1'].item()) <= TOLERANCE
    reference = load(golden_dir, meta['output']['file'])
    assert output.shape == reference.shape == (8, 100)
    assert (output - reference).abs().max().item() <= TOLERANCE


def test_sphereproduct_second_call_anneals(golden_dir):
    head, meta = build_head(golden_dir, 'SphereProduct')
    inputs = load(golden_dir, meta['input']['file'])
    first = head(inputs['embed'], inputs['label'])
    second = head(inputs['embed'], inputs['label'])
    reference = load(golden_dir, meta['extra_file'])['output_call2']
    assert (second - reference).abs().max().item() <= TOLERANCE
    assert not torch.allclose(first, second)


def test_intertopk_penalty_is_inactive_without_update(golden_dir):
    """WeSpeaker quirk: margin given to the constructor, no update() -> no
    top-k penalty; the two golden outputs differ exactly there."""
    updated, meta = build_head(golden_dir,
                               'ArcMarginProduct_intertopk_subcenter')
    inputs = load(golden_dir, meta['input']['file'])
    not_updated, _ = build_head(
        golden_dir, 'ArcMarginProduct_intertopk_subcenter_noupdate')
    assert not_updated.cos_mp == 1.0 and not_updated.sin_mp == 0.0
    difference = (updated(inputs['embed'], inputs['label']) -
                  not_updated(inputs['embed'], inputs['label'])).abs()
    changed_per_row = (difference > 1e-6).sum(dim=1)
    assert torch.all(changed_per_row == 5)  # exactly k_top columns per row
