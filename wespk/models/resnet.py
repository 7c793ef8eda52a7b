"""ResNet speaker embedding extractors (WeSpeaker's ``resnet.py``).

A 2-D ResNet over the (frequency, time) fbank map with a 3x3 stem, no max
pooling, and four stages of widths 32/64/128/256 (times 4 for bottleneck
blocks); stages 2-4 halve both frequency and time.  The frequency axis is
folded into channels before temporal pooling, and one or two linear layers
give the embedding.

``forward(x, lengths=None)`` takes fbank frames [B, T, F].  With lengths the
padded frames are zeroed before every 3x3 convolution, so a padded batch
gives the same embeddings as one utterance at a time.

Parameter names (``conv1``, ``bn1``, ``layer{1-4}.{i}.{conv,bn}{1,2,3}``,
``layer{k}.0.shortcut.{0,1}``, ``seg_1``, ``seg_bn_1``, ``seg_2``) follow
WeSpeaker so its checkpoints load with ``strict=True``.
"""

from types import MappingProxyType
from typing import Callable, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from wespk.models.masking import apply_mask, conv_output_lengths, frame_mask
from wespk.models.pooling import build_pooling

Stride = Union[int, Tuple[int, int]]


def _as_pair(stride: Stride) -> Tuple[int, int]:
    if isinstance(stride, int):
        return stride, stride
    return stride[0], stride[1]


def _shortcut(in_planes: int, out_planes: int,
              stride: Tuple[int, int]) -> nn.Sequential:
    """1x1 projection + BN when the block changes shape, else identity."""
    if stride != (1, 1) or in_planes != out_planes:
        return nn.Sequential(
            nn.Conv2d(in_planes,
                      out_planes,
                      kernel_size=1,
                      stride=stride,
                      bias=False), nn.BatchNorm2d(out_planes))
    return nn.Sequential()


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection.

    ``stride`` is an int (frequency and time) or a (frequency, time) pair;
    CAM++ uses frequency-only strides ``(s, 1)``.
    """
    expansion = 1
    #: batch norms that directly follow a conv in forward() (see wespk.inference.optimize)
    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"))

    def __init__(self, in_planes: int, planes: int, stride: Stride = 1):
        super().__init__()
        stride = _as_pair(stride)
        self.conv1 = nn.Conv2d(in_planes,
                               planes,
                               kernel_size=3,
                               stride=stride,
                               padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes,
                               planes,
                               kernel_size=3,
                               stride=1,
                               padding=1,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self,
                x: torch.Tensor,
                in_mask: Optional[torch.Tensor] = None,
                out_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x [B, C, F, T] with padded frames zeroed; masks at input/output time
        resolution (None: no padding)."""
        out = apply_mask(F.relu(self.bn1(self.conv1(x))), out_mask)
        out = self.bn2(self.conv2(out))
        out = F.relu(out + self.shortcut(x))
        return apply_mask(out, out_mask)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 conv-BN layers with a residual connection."""
    expansion = 4
    #: batch norms that directly follow a conv in forward() (see wespk.inference.optimize)
    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self, in_planes: int, planes: int, stride: Stride = 1):
        super().__init__()
        stride = _as_pair(stride)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes,
                               planes,
                               kernel_size=3,
                               stride=stride,
                               padding=1,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes,
                               planes * self.expansion,
                               kernel_size=1,
                               bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self,
                x: torch.Tensor,
                in_mask: Optional[torch.Tensor] = None,
                out_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x [B, C, F, T] with padded frames zeroed; masks at input/output time
        resolution (None: no padding)."""
        out = apply_mask(F.relu(self.bn1(self.conv1(x))), in_mask)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = F.relu(out + self.shortcut(x))
        return apply_mask(out, out_mask)


class ResNetStage(nn.ModuleList):
    """A sequence of residual blocks; the first one carries the stride.

    A ModuleList (not Sequential) so the frame masks can be passed along;
    the children are still named ``0, 1, ...`` like WeSpeaker's Sequential.
    """

    def __init__(self, blocks: List[nn.Module], time_stride: int):
        super().__init__(blocks)
        self.time_stride = time_stride

    def output_lengths(
            self, lengths: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """Valid frames after this stage (its first block's 3x3 stride)."""
        return conv_output_lengths(lengths, 3, self.time_stride, 1)

    def forward(self, x: torch.Tensor,
                lengths: Optional[torch.Tensor]) -> torch.Tensor:
        """Run the blocks; ``lengths`` are valid frames at the input resolution."""
        out_lengths = self.output_lengths(lengths)
        out_frames = (x.shape[-1] - 1) // self.time_stride + 1
        in_mask = frame_mask(lengths, x.shape[-1], x)
        out_mask = frame_mask(out_lengths, out_frames, x)
        for block in self:
            x = block(x, in_mask, out_mask)
            in_mask = out_mask
        return x


def make_resnet_stage(block: type, in_planes: int, planes: int,
                      num_blocks: int, stride: Stride) -> ResNetStage:
    """Build ``num_blocks`` blocks of ``block``; the first one has ``stride``."""
    blocks = []
    for i in range(num_blocks):
        blocks.append(block(in_planes, planes, stride if i == 0 else 1))
        in_planes = planes * block.expansion
    return ResNetStage(blocks, _as_pair(stride)[1])


class ResNet(nn.Module):
    """ResNet speaker model.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        num_blocks: blocks per stage, four numbers.
        m_channels: width of the first stage (the named constructors take it too,
            a wespk extension; WeSpeaker fixes it at 32).
        feat_dim: fbank dimension (a multiple of 8 keeps the stats dim exact).
        embed_dim: embedding size.
        pooling_func: TAP, TSDP, TSTP, ASTP, MHASTP or MQMHASTP.
        two_emb_layer: add ReLU -> BN(affine=False) -> Linear after ``seg_1``.

    ``forward`` returns ``(embed_a, embed_b)`` with two embedding layers,
    else ``(tensor(0.), embed_a)``; the embedding is always ``outputs[-1]``.
    """

    #: the stem's batch norm directly follows its conv (see wespk.inference.optimize)
    conv_bn_pairs = (("conv1", "bn1"),)

    def __init__(self,
                 block: type,
                 num_blocks: List[int],
                 m_channels: int = 32,
                 feat_dim: int = 40,
                 embed_dim: int = 128,
                 pooling_func: str = 'TSTP',
                 two_emb_layer: bool = False):
        super().__init__()
        self.feat_dim = feat_dim
        self.embed_dim = embed_dim
        self.stats_dim = int(feat_dim / 8) * m_channels * 8
        self.two_emb_layer = two_emb_layer

        self.conv1 = nn.Conv2d(1,
                               m_channels,
                               kernel_size=3,
                               stride=1,
                               padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        in_planes = m_channels
        stages = []
        for i, (width, stride) in enumerate(
                zip((1, 2, 4, 8), (1, 2, 2, 2))):
            stages.append(
                make_resnet_stage(block, in_planes, m_channels * width,
                                  num_blocks[i], stride))
            in_planes = m_channels * width * block.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

        self.pool = build_pooling(pooling_func,
                                  self.stats_dim * block.expansion)
        self.seg_1 = nn.Linear(self.pool.out_dim, embed_dim)
        if two_emb_layer:
            self.seg_bn_1 = nn.BatchNorm1d(embed_dim, affine=False)
            self.seg_2 = nn.Linear(embed_dim, embed_dim)
        else:
            self.seg_bn_1 = nn.Identity()
            self.seg_2 = nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        lengths: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """x: fbank [B, T, F]; lengths: valid frames [B] or None."""
        x = x.permute(0, 2, 1).unsqueeze(1)  # (B,T,F) -> (B,1,F,T)
        mask = frame_mask(lengths, x.shape[-1], x)
        x = apply_mask(x, mask)
        out = apply_mask(F.relu(self.bn1(self.conv1(x))), mask)
        out = self.layer1(out, lengths)
        lengths = self.layer1.output_lengths(lengths)
        out = self.layer2(out, lengths)
        lengths = self.layer2.output_lengths(lengths)
        out = self.layer3(out, lengths)
        lengths = self.layer3.output_lengths(lengths)
        out = self.layer4(out, lengths)
        lengths = self.layer4.output_lengths(lengths)

        stats = self.pool(out, lengths)
        embed_a = self.seg_1(stats)
        if self.two_emb_layer:
            embed_b = self.seg_2(self.seg_bn_1(F.relu(embed_a)))
            return embed_a, embed_b
        return torch.tensor(0.0), embed_a


# WeSpeaker's named sizes: name -> (block, blocks per stage).
RESNET_VARIANTS = MappingProxyType({
    'ResNet18': (BasicBlock, (2, 2, 2, 2)),
    'ResNet34': (BasicBlock, (3, 4, 6, 3)),
    'ResNet50': (Bottleneck, (3, 4, 6, 3)),
    'ResNet101': (Bottleneck, (3, 4, 23, 3)),
    'ResNet152': (Bottleneck, (3, 8, 36, 3)),
    'ResNet221': (Bottleneck, (6, 16, 48, 3)),
    'ResNet293': (Bottleneck, (10, 20, 64, 3)),
})


def _named_resnet(name: str) -> Callable[..., ResNet]:
    block, num_blocks = RESNET_VARIANTS[name]

    def build(feat_dim: int,
              embed_dim: int,
              pooling_func: str = 'TSTP',
              two_emb_layer: bool = False,
              m_channels: int = 32) -> ResNet:
        return ResNet(block, list(num_blocks),
                      feat_dim=feat_dim,
                      embed_dim=embed_dim,
                      pooling_func=pooling_func,
                      two_emb_layer=two_emb_layer,
                      m_channels=m_channels)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"{name}: {block.__name__} x {list(num_blocks)}."
    return build


ResNet18 = _named_resnet('ResNet18')
ResNet34 = _named_resnet('ResNet34')
ResNet50 = _named_resnet('ResNet50')
ResNet101 = _named_resnet('ResNet101')
ResNet152 = _named_resnet('ResNet152')
ResNet221 = _named_resnet('ResNet221')
ResNet293 = _named_resnet('ResNet293')
