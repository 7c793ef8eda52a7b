"""RepVGG train -> deploy conversion on small configs (grouped, SE, RSBB)."""

import pytest
import torch
import torch.nn as nn

from wespk.models import get_speaker_model
from wespk.models.repvgg import RepVGG, RepVGGBlock, convert_to_deploy


def calibrated(model):
    """Non-trivial eval-mode BN statistics, as after training."""
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
                module.running_mean.normal_(0, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
    return model.eval()


@pytest.mark.parametrize('config', [
    dict(block='RepVGG', override_groups_map={2: 2, 3: 4}),
    dict(block='RepVGG', use_se=True),
    dict(block='RepSPK'),
])
def test_deploy_form_equals_train_form(config):
    torch.manual_seed(0)
    model = calibrated(
        RepVGG(num_blocks=[1, 3, 1, 1],
               strides=[1, 1, 2, 2, 2],
               width_multiplier=[0.25] * 4,
               pooling_func='TSTP',
               feat_dim=24,
               embed_dim=16,
               **config))
    deployed = convert_to_deploy(model)
    x = torch.randn(2, 61, 24)
    with torch.no_grad():
        trained, fused = model(x), deployed(x)
    assert (trained - fused).abs().max().item() <= 1e-4
    assert not any('rbr_dense' in key for key in deployed.state_dict())
    rebuilt = RepVGG(num_blocks=[1, 3, 1, 1],
                     strides=[1, 1, 2, 2, 2],
                     width_multiplier=[0.25] * 4,
                     pooling_func='TSTP',
                     feat_dim=24,
                     embed_dim=16,
                     deploy=True,
                     **config)
    rebuilt.load_state_dict(deployed.state_dict(), strict=True)


def test_identity_branch_only_where_shape_is_kept():
    keep = RepVGGBlock(8, 8, stride=1)
    downsample = RepVGGBlock(8, 16, stride=2)
    assert keep.rbr_identity is not None and downsample.rbr_identity is None


def test_rsbb_deploy_kernel_is_5x5():
    model = get_speaker_model('REPVGG_TINY_RSBB_A0')(feat_dim=80,
                                                      embed_dim=32,
                                                      deploy=True)
    assert model.stage1[0].rbr_reparam.weight.shape[-2:] == (5, 5)


def test_grouped_variant_uses_groups_on_even_blocks():
    model = get_speaker_model('REPVGG_B1g2')(feat_dim=80, embed_dim=32)
    assert model.stage1[0].rbr_dense.conv.groups == 1  # block index 1
    assert model.stage1[1].rbr_dense.conv.groups == 2  # block index 2
