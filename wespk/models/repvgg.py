"""RepVGG speaker embedding extractors (WeSpeaker's ``repvgg.py``).

Training form: every block sums a 3x3 conv-BN branch (``rbr_dense``), a
1x1 conv-BN branch (``rbr_1x1``) and, when the shape is kept, an identity BN
(``rbr_identity``), then applies ReLU (and optionally a 2-D SE block).  The
RSBB variants (``RepSPKBlock``) replace the 1x1 branch by a dilated 3x3
branch (``rbr_dense_dilation``).  Deploy form: each block is one conv with
bias (``rbr_reparam``), 3x3 (or 5x5 for RSBB), numerically equal to the sum
of the branches with BN in eval mode.

:func:`convert_to_deploy` turns a trained model into its deploy form (the
equivalent of WeSpeaker's ``repvgg_model_convert``); its ``state_dict`` loads
into a model built with ``deploy=True``.

``forward(x, lengths=None)`` takes fbank frames [B, T, F] and returns the
embedding tensor.  Stages 2-4 halve frequency and time; with ``lengths`` the
padded frames are zeroed after every block and the SE and pooling statistics
use the valid frames only.
"""

import copy
import logging
from types import MappingProxyType
from typing import Callable, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from wespk.models.masking import apply_mask, conv_output_lengths, frame_mask
from wespk.models.pooling import build_pooling

logger = logging.getLogger(__name__)


class SEBlock_2D(nn.Module):
    """Squeeze-excitation over (frequency, time): ``fc_1`` -> ReLU -> ``fc_2``
    -> sigmoid gates each channel."""

    def __init__(self, in_planes: int, ratio: int = 16):
        super().__init__()
        self.in_planes = in_planes
        self.fc_1 = nn.Linear(in_planes, in_planes // ratio)
        self.relu = nn.ReLU(inplace=True)
        self.fc_2 = nn.Linear(in_planes // ratio, in_planes)
        self.sigmoid = nn.Sigmoid()

    def forward(self,
                x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, F, T], zero at padded frames when ``mask`` is given."""
        if mask is None:
            squeezed = x.mean(dim=(2, 3))
        else:
            valid = mask.sum(dim=(2, 3)) * x.shape[2]
            squeezed = x.sum(dim=(2, 3)) / valid
        gate = self.sigmoid(self.fc_2(self.relu(self.fc_1(squeezed))))
        return x * gate.view(x.shape[0], x.shape[1], 1, 1)


def conv_bn(in_channels: int,
            out_channels: int,
            kernel_size: int,
            stride: int,
            padding: int,
            dilation: int = 1,
            groups: int = 1) -> nn.Sequential:
    """Conv2d without bias followed by BatchNorm2d (``conv``, ``bn``)."""
    result = nn.Sequential()
    result.add_module(
        'conv',
        nn.Conv2d(in_channels=in_channels,
                  out_channels=out_channels,
                  kernel_size=kernel_size,
                  stride=stride,
                  padding=padding,
                  dilation=dilation,
                  groups=groups,
                  bias=False))
    result.add_module('bn', nn.BatchNorm2d(num_features=out_channels))
    return result


def fuse_bn(kernel: torch.Tensor,
            bn: nn.BatchNorm2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BN into the preceding bias-free conv kernel.

    Returns ``(kernel * gamma/std, beta - mean*gamma/std)`` with
    ``std = sqrt(running_var + eps)``.
    """
    std = (bn.running_var + bn.eps).sqrt()
    scale = (bn.weight / std).reshape(-1, 1, 1, 1)
    return kernel * scale, bn.bias - bn.running_mean * bn.weight / std


def identity_kernel(channels: int, groups: int, kernel_size: int,
                    like: torch.Tensor) -> torch.Tensor:
    """A (grouped) conv kernel that copies its input: 1 at the centre tap."""
    input_dim = channels // groups
    kernel = torch.zeros(channels,
                         input_dim,
                         kernel_size,
                         kernel_size,
                         dtype=like.dtype,
                         device=like.device)
    centre = kernel_size // 2
    for i in range(channels):
        kernel[i, i % input_dim, centre, centre] = 1.0
    return kernel


class RepVGGBlock(nn.Module):
    """RepVGG block: 3x3 + 1x1 + identity BN branches, or their fused conv.

    Only ``kernel_size=3, padding=1`` is supported, as in WeSpeaker.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 3,
                 stride: int = 1,
                 padding: int = 1,
                 dilation: int = 1,
                 groups: int = 1,
                 padding_mode: str = 'zeros',
                 deploy: bool = False,
                 use_se: bool = False):
        super().__init__()
        if kernel_size != 3 or padding != 1:
            raise ValueError('RepVGGBlock needs kernel_size=3, padding=1')
        self.deploy = deploy
        self.groups = groups
        self.in_channels = in_channels
        self.nonlinearity = nn.ReLU(inplace=True)
        self.se: Optional[SEBlock_2D] = (SEBlock_2D(out_channels, 4)
                                         if use_se else None)
        self.rbr_reparam: Optional[nn.Conv2d] = None
        self.rbr_identity: Optional[nn.BatchNorm2d] = None
        self.rbr_dense: Optional[nn.Sequential] = None
        self.rbr_1x1: Optional[nn.Sequential] = None
        if deploy:
            self.rbr_reparam = nn.Conv2d(in_channels,
                                         out_channels,
                                         kernel_size,
                                         stride=stride,
                                         padding=padding,
                                         dilation=dilation,
                                         groups=groups,
                                         bias=True,
                                         padding_mode=padding_mode)
        else:
            if out_channels == in_channels and stride == 1:
                self.rbr_identity = nn.BatchNorm2d(in_channels)
            self.rbr_dense = conv_bn(in_channels,
                                     out_channels,
                                     kernel_size,
                                     stride,
                                     padding,
                                     groups=groups)
            self.rbr_1x1 = conv_bn(in_channels,
                                   out_channels,
                                   1,
                                   stride,
                                   padding - kernel_size // 2,
                                   groups=groups)

    def forward(self,
                x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, F, T], zero at padded frames when ``mask`` (output time
        resolution) is given; the output is zeroed there too."""
        if self.rbr_reparam is not None:
            out = self.rbr_reparam(x)
        else:
            assert self.rbr_dense is not None and self.rbr_1x1 is not None
            out = self.rbr_dense(x) + self.rbr_1x1(x)
            if self.rbr_identity is not None:
                out = out + self.rbr_identity(x)
        out = apply_mask(self.nonlinearity(out), mask)
        if self.se is not None:
            out = apply_mask(self.se(out, mask), mask)
        return out

    def get_equivalent_kernel_bias(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The 3x3 kernel and bias equal to the three branches (BN in eval)."""
        assert self.rbr_dense is not None and self.rbr_1x1 is not None
        kernel3x3, bias3x3 = fuse_bn(self.rbr_dense.conv.weight,
                                     self.rbr_dense.bn)
        kernel1x1, bias1x1 = fuse_bn(self.rbr_1x1.conv.weight,
                                     self.rbr_1x1.bn)
        kernel = kernel3x3 + F.pad(kernel1x1, [1, 1, 1, 1])
        bias = bias3x3 + bias1x1
        if self.rbr_identity is not None:
            kernel_id, bias_id = fuse_bn(
                identity_kernel(self.in_channels, self.groups, 3, kernel),
                self.rbr_identity)
            kernel = kernel + kernel_id
            bias = bias + bias_id
        return kernel, bias

    def switch_to_deploy(self) -> None:
        """Replace the branches by one fused conv (``rbr_reparam``), in place."""
        if self.rbr_reparam is not None:
            return
        assert self.rbr_dense is not None
        dense = self.rbr_dense.conv
        self.rbr_reparam = _fused_conv(dense, dense.padding,
                                       *self.get_equivalent_kernel_bias())
        self.rbr_dense = None
        self.rbr_1x1 = None
        self.rbr_identity = None
        self.deploy = True


class RepSPKBlock(nn.Module):
    """RepSPK (RSBB) block: 3x3 + dilated 3x3 + identity BN, fused to 5x5.

    Reference: Rep Works in Speaker Verification (arXiv:2110.09720).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 3,
                 stride: int = 1,
                 padding: int = 1,
                 dilation: int = 1,
                 branch_dilation: int = 2,
                 groups: int = 1,
                 padding_mode: str = 'zeros',
                 deploy: bool = False,
                 use_se: bool = False):
        super().__init__()
        if (kernel_size != 3 or padding != 1 or dilation != 1
                or branch_dilation != 2):
            raise ValueError('RepSPKBlock needs kernel_size=3, padding=1, '
                             'dilation=1, branch_dilation=2')
        self.deploy = deploy
        self.groups = groups
        self.in_channels = in_channels
        self.branch_dilation = branch_dilation
        self.deploy_kernel_size = (kernel_size - 1) * (branch_dilation -
                                                       1) + kernel_size
        self.nonlinearity = nn.ReLU(inplace=True)
        self.se: Optional[SEBlock_2D] = (SEBlock_2D(out_channels, 4)
                                         if use_se else None)
        self.rbr_reparam: Optional[nn.Conv2d] = None
        self.rbr_identity: Optional[nn.BatchNorm2d] = None
        self.rbr_dense: Optional[nn.Sequential] = None
        self.rbr_dense_dilation: Optional[nn.Sequential] = None
        if deploy:
            self.rbr_reparam = nn.Conv2d(in_channels,
                                         out_channels,
                                         self.deploy_kernel_size,
                                         stride=stride,
                                         padding=branch_dilation,
                                         groups=groups,
                                         bias=True,
                                         padding_mode=padding_mode)
        else:
            if out_channels == in_channels and stride == 1:
                self.rbr_identity = nn.BatchNorm2d(in_channels)
            self.rbr_dense = conv_bn(in_channels,
                                     out_channels,
                                     kernel_size,
                                     stride,
                                     padding,
                                     groups=groups)
            self.rbr_dense_dilation = conv_bn(in_channels,
                                              out_channels,
                                              kernel_size,
                                              stride,
                                              branch_dilation,
                                              dilation=branch_dilation,
                                              groups=groups)

    def forward(self,
                x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, F, T], zero at padded frames when ``mask`` (output time
        resolution) is given; the output is zeroed there too."""
        if self.rbr_reparam is not None:
            out = self.rbr_reparam(x)
        else:
            assert (self.rbr_dense is not None
                    and self.rbr_dense_dilation is not None)
            out = self.rbr_dense(x) + self.rbr_dense_dilation(x)
            if self.rbr_identity is not None:
                out = out + self.rbr_identity(x)
        out = apply_mask(self.nonlinearity(out), mask)
        if self.se is not None:
            out = apply_mask(self.se(out, mask), mask)
        return out

    def get_equivalent_kernel_bias(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The 5x5 kernel and bias equal to the three branches (BN in eval)."""
        assert (self.rbr_dense is not None
                and self.rbr_dense_dilation is not None)
        kernel3x3, bias3x3 = fuse_bn(self.rbr_dense.conv.weight,
                                     self.rbr_dense.bn)
        kernel_dil, bias_dil = fuse_bn(self.rbr_dense_dilation.conv.weight,
                                       self.rbr_dense_dilation.bn)
        size = self.deploy_kernel_size
        kernel_dil5 = kernel_dil.new_zeros(kernel_dil.shape[0],
                                           kernel_dil.shape[1], size, size)
        kernel_dil5[:, :, ::2, ::2] = kernel_dil
        kernel = kernel_dil5 + F.pad(kernel3x3, [1, 1, 1, 1])
        bias = bias3x3 + bias_dil
        if self.rbr_identity is not None:
            kernel_id, bias_id = fuse_bn(
                identity_kernel(self.in_channels, self.groups, size, kernel),
                self.rbr_identity)
            kernel = kernel + kernel_id
            bias = bias + bias_id
        return kernel, bias

    def switch_to_deploy(self) -> None:
        """Replace the branches by one fused 5x5 conv (``rbr_reparam``)."""
        if self.rbr_reparam is not None:
            return
        assert self.rbr_dense is not None
        self.rbr_reparam = _fused_conv(
            self.rbr_dense.conv, (self.branch_dilation, self.branch_dilation),
            *self.get_equivalent_kernel_bias())
        self.rbr_dense = None
        self.rbr_dense_dilation = None
        self.rbr_identity = None
        self.deploy = True


def _fused_conv(template: nn.Conv2d, padding: Tuple[int, ...],
                kernel: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    """A Conv2d with bias holding ``kernel``/``bias``, strided like ``template``."""
    conv = nn.Conv2d(template.in_channels,
                     template.out_channels,
                     kernel_size=kernel.shape[-1],
                     stride=template.stride,
                     padding=padding,
                     groups=template.groups,
                     bias=True).to(kernel.device)
    conv.weight.data = kernel.detach().clone()
    conv.bias.data = bias.detach().clone()
    return conv


class RepVGGStage(nn.ModuleList):
    """Blocks of one stage (children ``0, 1, ...``); the first carries the stride."""

    def __init__(self, blocks: List[nn.Module], stride: int):
        super().__init__(blocks)
        self.stride = stride

    def output_lengths(
            self, lengths: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """Valid frames after this stage."""
        return conv_output_lengths(lengths, 3, self.stride, 1)

    def forward(self, x: torch.Tensor,
                lengths: Optional[torch.Tensor]) -> torch.Tensor:
        """x: [B, C, F, T] zeroed at padding; ``lengths`` at input resolution."""
        out_frames = (x.shape[-1] - 1) // self.stride + 1
        mask = frame_mask(self.output_lengths(lengths), out_frames, x)
        for block in self:
            x = block(x, mask)
        return x


class RepVGG(nn.Module):
    """RepVGG speaker model.

    Args:
        head_inplanes: input channels (1 for an fbank map).
        block: ``'RepVGG'`` or ``'RepSPK'``.
        num_blocks: blocks in stages 1-4.
        strides: strides of stage 0 and stages 1-4 (five numbers).
        base_width: scales the widths (64 = WeSpeaker default).
        width_multiplier: width factors of stages 1-4.
        override_groups_map: {global block index: groups} for grouped convs.
        deploy: build the fused (inference) form.
        use_se: add a 2-D SE block after every block.
        pooling_func: pooling layer name.
        feat_dim: fbank dimension.
        embed_dim: embedding size.
    """

    def __init__(self,
                 head_inplanes: int = 1,
                 block: str = 'RepVGG',
                 num_blocks: Optional[List[int]] = None,
                 strides: Optional[List[int]] = None,
                 base_width: int = 64,
                 width_multiplier: Optional[List[float]] = None,
                 override_groups_map: Optional[dict] = None,
                 deploy: bool = False,
                 use_se: bool = False,
                 pooling_func: str = 'ASTP',
                 feat_dim: int = 80,
                 embed_dim: int = 256):
        super().__init__()
        if (num_blocks is None or strides is None or width_multiplier is None
                or len(num_blocks) != 4 or len(strides) != 5
                or len(width_multiplier) != 4):
            raise ValueError('RepVGG needs 4 num_blocks, 5 strides and '
                             '4 width_multiplier values')
        if block == 'RepVGG':
            block_class = RepVGGBlock
        elif block == 'RepSPK':
            block_class = RepSPKBlock
        else:
            raise ValueError(f'unknown RepVGG block {block!r}; '
                             'known: RepVGG, RepSPK')
        widths = [w * (base_width / 64.) for w in width_multiplier]
        self.deploy = deploy
        self.use_se = use_se
        groups_map = dict(override_groups_map or {})
        if 0 in groups_map:
            raise ValueError('stage0 cannot be grouped')

        in_planes = min(64, int(64 * widths[0]))
        self.stage0 = block_class(head_inplanes,
                                  in_planes,
                                  kernel_size=3,
                                  stride=strides[0],
                                  padding=1,
                                  deploy=deploy,
                                  use_se=use_se)
        self.stage0_stride = strides[0]
        layer_index = 1
        stages = []
        for base, num, width, stride in zip((64, 128, 256, 512), num_blocks,
                                            widths, strides[1:]):
            planes = int(base * width)
            blocks = []
            for i in range(num):
                blocks.append(
                    block_class(in_planes,
                                planes,
                                kernel_size=3,
                                stride=stride if i == 0 else 1,
                                padding=1,
                                groups=groups_map.get(layer_index, 1),
                                deploy=deploy,
                                use_se=use_se))
                in_planes = planes
                layer_index += 1
            stages.append(RepVGGStage(blocks, stride))
        self.stage1, self.stage2, self.stage3, self.stage4 = stages
        self.output_planes = in_planes
        self.stats_dim = self.output_planes * int(feat_dim / 8)
        self.pool = build_pooling(pooling_func, self.stats_dim)
        self.seg = nn.Linear(self.pool.out_dim, embed_dim)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # normal_ only advances the random stream exactly as
                # WeSpeaker's init does; kaiming_normal_ sets the values.
                nn.init.normal_(module.weight, 0., 0.01)
                nn.init.kaiming_normal_(module.weight,
                                        mode='fan_out',
                                        nonlinearity='relu')
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def forward(self,
                x: torch.Tensor,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: fbank [B, T, F]; lengths: valid frames [B] or None.

        Returns the embedding [B, embed_dim].
        """
        x = x.permute(0, 2, 1).unsqueeze(1)  # (B,T,F) -> (B,1,F,T)
        x = apply_mask(x, frame_mask(lengths, x.shape[-1], x))
        lengths = conv_output_lengths(lengths, 3, self.stage0_stride, 1)
        out_frames = (x.shape[-1] - 1) // self.stage0_stride + 1
        x = self.stage0(x, frame_mask(lengths, out_frames, x))
        x = self.stage1(x, lengths)
        lengths = self.stage1.output_lengths(lengths)
        x = self.stage2(x, lengths)
        lengths = self.stage2.output_lengths(lengths)
        x = self.stage3(x, lengths)
        lengths = self.stage3.output_lengths(lengths)
        x = self.stage4(x, lengths)
        lengths = self.stage4.output_lengths(lengths)
        return self.seg(self.pool(x, lengths))


def convert_to_deploy(model: nn.Module) -> nn.Module:
    """Return a deploy-form copy of a RepVGG model (the input is unchanged).

    Every block's branches are fused into one conv with bias using the BN
    running statistics (WeSpeaker's ``repvgg_model_convert``).  The copy is
    in eval mode; its ``state_dict`` loads strictly into the same model
    built with ``deploy=True``.
    """
    deployed = copy.deepcopy(model)
    converted = 0
    with torch.no_grad():
        for module in deployed.modules():
            if isinstance(module, (RepVGGBlock, RepSPKBlock)):
                module.switch_to_deploy()
                converted += 1
    if isinstance(deployed, RepVGG):
        deployed.deploy = True
    logger.info('fused %d RepVGG blocks into deploy form', converted)
    return deployed.eval()


# Block indices (counted over stages 1-4) that WeSpeaker makes grouped.
_GROUPWISE_LAYERS = tuple(range(2, 27, 2))

# name -> (block type, blocks per stage, width multipliers, groups)
_VARIANTS = MappingProxyType({
    'REPVGG_TINY_A0': ('RepVGG', (3, 4, 23, 3), (0.5, 0.5, 0.5, 0.5), 1),
    'REPVGG_TINY_RSBB_A0': ('RepSPK', (3, 4, 23, 3), (0.5, 0.5, 0.5, 0.5), 1),
    'REPVGG_A0': ('RepVGG', (2, 4, 14, 1), (0.75, 0.75, 0.75, 2.5), 1),
    'REPVGG_RSBB_A0': ('RepSPK', (2, 4, 14, 1), (0.75, 0.75, 0.75, 2.5), 1),
    'REPVGG_A1': ('RepVGG', (2, 4, 14, 1), (1, 1, 1, 2.5), 1),
    'REPVGG_A2': ('RepVGG', (2, 4, 14, 1), (1.5, 1.5, 1.5, 2.75), 1),
    'REPVGG_RSBB_A2': ('RepSPK', (2, 4, 14, 1), (1.5, 1.5, 1.5, 2.75), 1),
    'REPVGG_B0': ('RepVGG', (4, 6, 16, 1), (1, 1, 1, 2.5), 1),
    'REPVGG_RSBB_B0': ('RepSPK', (4, 6, 16, 1), (1, 1, 1, 2.5), 1),
    'REPVGG_B1': ('RepVGG', (4, 6, 16, 1), (2, 2, 2, 4), 1),
    'REPVGG_B1g2': ('RepVGG', (4, 6, 16, 1), (2, 2, 2, 4), 2),
    'REPVGG_B1g4': ('RepVGG', (4, 6, 16, 1), (2, 2, 2, 4), 4),
    'REPVGG_B2': ('RepVGG', (4, 6, 16, 1), (2.5, 2.5, 2.5, 5), 1),
    'REPVGG_B2g2': ('RepVGG', (4, 6, 16, 1), (2.5, 2.5, 2.5, 5), 2),
    'REPVGG_B2g4': ('RepVGG', (4, 6, 16, 1), (2.5, 2.5, 2.5, 5), 4),
    'REPVGG_B3': ('RepVGG', (4, 6, 16, 1), (3, 3, 3, 5), 1),
    'REPVGG_B3g2': ('RepVGG', (4, 6, 16, 1), (3, 3, 3, 5), 2),
    'REPVGG_B3g4': ('RepVGG', (4, 6, 16, 1), (3, 3, 3, 5), 4),
    'REPVGG_D2SE': ('RepVGG', (8, 14, 24, 1), (2.5, 2.5, 2.5, 5), 4),
})


def build_repvgg_variant(name: str,
                         feat_dim: int,
                         embed_dim: int,
                         pooling_func: str = 'TSTP',
                         deploy: bool = False,
                         use_se: bool = False) -> RepVGG:
    """Build one of WeSpeaker's RepVGG sizes (see the ``REPVGG_*`` functions)."""
    if name not in _VARIANTS:
        raise ValueError(f'unknown RepVGG variant {name!r}; '
                         f'known: {", ".join(_VARIANTS)}')
    block, num_blocks, widths, groups = _VARIANTS[name]
    groups_map = {i: groups for i in _GROUPWISE_LAYERS} if groups > 1 else None
    return RepVGG(block=block,
                  num_blocks=list(num_blocks),
                  strides=[1, 1, 2, 2, 2],
                  width_multiplier=list(widths),
                  override_groups_map=groups_map,
                  deploy=deploy,
                  use_se=use_se,
                  pooling_func=pooling_func,
                  embed_dim=embed_dim,
                  feat_dim=feat_dim)


def _named_repvgg(name: str, use_se_default: bool = False) -> Callable[..., RepVGG]:
    block, num_blocks, widths, groups = _VARIANTS[name]

    def build(feat_dim: int, embed_dim: int, pooling_func: str = 'TSTP',
              deploy: bool = False, use_se: bool = use_se_default) -> RepVGG:
        return build_repvgg_variant(name, feat_dim, embed_dim, pooling_func,
                                    deploy, use_se)

    build.__name__ = build.__qualname__ = name
    grouped = f", {groups}-group convs in every other block" if groups > 1 else ""
    build.__doc__ = (f"{name}: {block} blocks {list(num_blocks)}, widths x{list(widths)}"
                     f"{grouped}{', SE blocks' if use_se_default else ''}.")
    return build


REPVGG_TINY_A0 = _named_repvgg('REPVGG_TINY_A0')
REPVGG_TINY_RSBB_A0 = _named_repvgg('REPVGG_TINY_RSBB_A0')
REPVGG_A0 = _named_repvgg('REPVGG_A0')
REPVGG_RSBB_A0 = _named_repvgg('REPVGG_RSBB_A0')
REPVGG_A1 = _named_repvgg('REPVGG_A1')
REPVGG_A2 = _named_repvgg('REPVGG_A2')
REPVGG_RSBB_A2 = _named_repvgg('REPVGG_RSBB_A2')
REPVGG_B0 = _named_repvgg('REPVGG_B0')
REPVGG_RSBB_B0 = _named_repvgg('REPVGG_RSBB_B0')
REPVGG_B1 = _named_repvgg('REPVGG_B1')
REPVGG_B1g2 = _named_repvgg('REPVGG_B1g2')
REPVGG_B1g4 = _named_repvgg('REPVGG_B1g4')
REPVGG_B2 = _named_repvgg('REPVGG_B2')
REPVGG_B2g2 = _named_repvgg('REPVGG_B2g2')
REPVGG_B2g4 = _named_repvgg('REPVGG_B2g4')
REPVGG_B3 = _named_repvgg('REPVGG_B3')
REPVGG_B3g2 = _named_repvgg('REPVGG_B3g2')
REPVGG_B3g4 = _named_repvgg('REPVGG_B3g4')
REPVGG_D2SE = _named_repvgg('REPVGG_D2SE', use_se_default=True)
