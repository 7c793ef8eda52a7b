"""get_projection, margin updates, fp32 under autocast, build_loss."""

import math

import pytest
import torch

from wespk.losses import (AddMarginProduct, ArcMarginProduct,
                          ArcMarginProduct_intertopk_subcenter, SoftmaxHead,
                          SphereFace2, SphereProduct, build_loss,
                          get_projection)

BASE = {'embed_dim': 16, 'num_class': 10, 'scale': 32.0}


@pytest.mark.parametrize('project_type, cls', [
    ('softmax', SoftmaxHead),
    ('add_margin', AddMarginProduct),
    ('arc_margin', ArcMarginProduct),
    ('arc_margin_intertopk_subcenter', ArcMarginProduct_intertopk_subcenter),
    ('sphere', SphereProduct),
    ('sphereface2', SphereFace2),
])
def test_get_projection_builds_each_type(project_type, cls):
    head = get_projection(dict(BASE, project_type=project_type,
                               easy_margin=False))
    assert type(head) is cls
    head.update(0.2)  # every head accepts the scheduler's call


def test_margin_heads_start_at_zero_margin_like_wespeaker():
    head = get_projection(dict(BASE, project_type='arc_margin'))
    assert head.margin == 0.0
    embed, label = torch.randn(4, 16), torch.tensor([0, 1, 2, 3])
    plain = head(embed, label)
    head.update(0.2)
    assert head.cos_m == pytest.approx(math.cos(0.2))
    assert head.th == pytest.approx(math.cos(math.pi - 0.2))
    margined = head(embed, label)
    target = torch.arange(4), label
    assert torch.all(margined[target] < plain[target])
    off_target = torch.ones_like(plain, dtype=torch.bool)
    off_target[target] = False
    assert torch.equal(margined[off_target], plain[off_target])


def test_margin_in_conf_is_applied_through_update():
    head = get_projection(
        dict(BASE, project_type='arc_margin_intertopk_subcenter', margin=0.2,
             K=2, mp=0.06, k_top=3))
    assert head.margin == 0.2
    assert head.cos_mp == pytest.approx(math.cos(0.06))
    assert head.weight.shape == (20, 16)


def test_do_lm_disables_inter_topk():
    head = get_projection(
        dict(BASE, project_type='arc_margin_intertopk_subcenter', do_lm=True,
             margin=0.5))
    assert head.k_top == 0 and head.mp == 0.0


def test_additive_margin_logits():
    head = AddMarginProduct(16, 10, scale=10.0, margin=0.3)
    embed, label = torch.randn(3, 16), torch.tensor([4, 0, 9])
    cosine = torch.nn.functional.normalize(embed) @ \
        torch.nn.functional.normalize(head.weight).T
    expected = 10.0 * cosine
    expected[torch.arange(3), label] -= 10.0 * 0.3
    assert torch.allclose(head(embed, label), expected, atol=1e-5)


def test_unknown_project_type_and_keys_are_rejected():
    with pytest.raises(ValueError, match='project_type'):
        get_projection(dict(BASE, project_type='arcface'))
    with pytest.raises(ValueError, match='scal'):
        get_projection(dict(BASE, project_type='arc_margin', scal=30))


@pytest.mark.parametrize('project_type', ['softmax', 'arc_margin',
                                          'arc_margin_intertopk_subcenter'])
def test_heads_compute_in_float32_under_autocast(project_type):
    torch.manual_seed(0)
    head = get_projection(dict(BASE, project_type=project_type, margin=0.2))
    head.eval()
    embed, label = torch.randn(4, 16), torch.tensor([1, 2, 3, 4])
    reference = head(embed, label)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        logits = head(embed.to(torch.bfloat16), label)
    assert logits.dtype == torch.float32
    # only the bf16 rounding of the input embedding remains
    assert torch.allclose(logits, reference, atol=0.5)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        exact = head(embed, label)
    assert torch.equal(exact, reference)


def test_sphereface2_returns_logits_and_loss():
    head = get_projection(dict(BASE, project_type='sphereface2', margin=0.2))
    logits, loss = head(torch.randn(4, 16), torch.tensor([0, 1, 2, 3]))
    assert logits.shape == (4, 10) and loss.dim() == 0 and loss.item() > 0


def test_build_loss_label_smoothing():
    logits = torch.tensor([[4.0, 0.0, 0.0]])
    target = torch.tensor([0])
    plain = build_loss()(logits, target)
    smoothed = build_loss('CrossEntropyLoss', label_smoothing=0.3)(logits,
                                                                   target)
    log_probs = torch.log_softmax(logits, dim=1)[0]
    expected = -(0.8 * log_probs[0] + 0.1 * log_probs[1] +
                 0.1 * log_probs[2])
    assert plain.item() == pytest.approx(-log_probs[0].item(), rel=1e-6)
    assert smoothed.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError):
        build_loss('FocalLoss')
