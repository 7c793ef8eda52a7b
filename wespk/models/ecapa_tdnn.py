"""ECAPA-TDNN speaker embedding extractors (WeSpeaker's ``ecapa_tdnn.py``).

A 1-D TDNN over fbank frames: a k=5 convolution, three SE-Res2Net blocks
with dilations 2, 3 and 4, a 1x1 convolution over the concatenated block
outputs (always 1536 channels, as in WeSpeaker, even for c1024), attentive
statistics pooling, BN and a linear embedding layer.  The ``_GLOB_`` variants
feed the utterance mean and std into the pooling attention.

``forward(x, lengths=None)`` takes fbank frames [B, T, F] and returns
``(out4, embed)`` like WeSpeaker (``out4`` is the last block's frame-level
output [B, C, T]).  With lengths, the padded frames are zeroed before every
convolution with temporal context and the SE and pooling statistics use the
valid frames only.

Conv1dReluBn applies ReLU before BN, as WeSpeaker does.
"""

from types import MappingProxyType
from typing import Callable, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from wespk.models.masking import apply_mask, frame_mask
from wespk.models.pooling import build_pooling, time_mean

POOL_CHANNELS = 512 * 3


class Conv1dReluBn(nn.Module):
    """Conv1d -> ReLU -> BatchNorm1d (``conv``, ``bn``)."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 stride: int = 1,
                 padding: int = 0,
                 dilation: int = 1,
                 bias: bool = True):
        super().__init__()
        self.conv = nn.Conv1d(in_channels,
                              out_channels,
                              kernel_size,
                              stride,
                              padding,
                              dilation,
                              bias=bias)
        self.bn = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, T]."""
        return self.bn(F.relu(self.conv(x)))


class Res2Conv1dReluBn(nn.Module):
    """Res2Net split convolution: ``scale`` channel groups, each but the last
    convolved after adding the previous group's output (``convs``, ``bns``)."""

    def __init__(self,
                 channels: int,
                 kernel_size: int = 1,
                 stride: int = 1,
                 padding: int = 0,
                 dilation: int = 1,
                 bias: bool = True,
                 scale: int = 4):
        super().__init__()
        if channels % scale != 0:
            raise ValueError(f'channels {channels} not divisible by {scale}')
        self.scale = scale
        self.width = channels // scale
        self.nums = scale if scale == 1 else scale - 1
        self.convs = nn.ModuleList([
            nn.Conv1d(self.width,
                      self.width,
                      kernel_size,
                      stride,
                      padding,
                      dilation,
                      bias=bias) for _ in range(self.nums)
        ])
        self.bns = nn.ModuleList(
            [nn.BatchNorm1d(self.width) for _ in range(self.nums)])

    def forward(self,
                x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, T]; mask: valid frames [B, 1, T] or None."""
        splits = torch.split(apply_mask(x, mask), self.width, 1)
        outputs = []
        group = splits[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            if i >= 1:
                group = group + splits[i]
            group = apply_mask(bn(F.relu(conv(group))), mask)
            outputs.append(group)
        if self.scale != 1:
            outputs.append(splits[self.nums])
        return torch.cat(outputs, dim=1)


class SE_Connect(nn.Module):
    """Squeeze-excitation over time: ``x * sigmoid(linear2(relu(linear1(mean_t x))))``."""

    def __init__(self, channels: int, se_bottleneck_dim: int = 128):
        super().__init__()
        self.linear1 = nn.Linear(channels, se_bottleneck_dim)
        self.linear2 = nn.Linear(se_bottleneck_dim, channels)

    def forward(self,
                x: torch.Tensor,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, T]; the time mean covers the valid frames only."""
        gate = F.relu(self.linear1(time_mean(x, lengths)))
        gate = torch.sigmoid(self.linear2(gate))
        return x * gate.unsqueeze(2)


class SE_Res2Block(nn.Module):
    """1x1 Conv1dReluBn -> Res2 dilated conv -> 1x1 Conv1dReluBn -> SE, plus
    the residual (``se_res2block.{0,1,2,3}``)."""

    def __init__(self, channels: int, kernel_size: int, stride: int,
                 padding: int, dilation: int, scale: int):
        super().__init__()
        self.se_res2block = nn.Sequential(
            Conv1dReluBn(channels, channels, kernel_size=1),
            Res2Conv1dReluBn(channels,
                             kernel_size,
                             stride,
                             padding,
                             dilation,
                             scale=scale),
            Conv1dReluBn(channels, channels, kernel_size=1),
            SE_Connect(channels))

    def forward(self,
                x: torch.Tensor,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, T] with padded frames zeroed; returns the same layout."""
        mask = frame_mask(lengths, x.shape[-1], x)
        out = self.se_res2block[0](x)
        out = self.se_res2block[1](out, mask)
        out = self.se_res2block[2](out)
        out = self.se_res2block[3](out, lengths)
        return apply_mask(x + out, mask)


class ECAPA_TDNN(nn.Module):
    """ECAPA-TDNN speaker model.

    Args:
        channels: width of the TDNN blocks (512 or 1024).
        feat_dim: fbank dimension.
        embed_dim: embedding size.
        pooling_func: pooling layer name (WeSpeaker configs use ASTP).
        global_context_att: ASTP attention sees the utterance mean and std.
        emb_bn: BatchNorm1d ``bn2`` on the embedding.
    """

    def __init__(self,
                 channels: int = 512,
                 feat_dim: int = 80,
                 embed_dim: int = 192,
                 pooling_func: str = 'ASTP',
                 global_context_att: bool = False,
                 emb_bn: bool = False):
        super().__init__()
        self.layer1 = Conv1dReluBn(feat_dim, channels, kernel_size=5, padding=2)
        self.layer2 = SE_Res2Block(channels,
                                   kernel_size=3,
                                   stride=1,
                                   padding=2,
                                   dilation=2,
                                   scale=8)
        self.layer3 = SE_Res2Block(channels,
                                   kernel_size=3,
                                   stride=1,
                                   padding=3,
                                   dilation=3,
                                   scale=8)
        self.layer4 = SE_Res2Block(channels,
                                   kernel_size=3,
                                   stride=1,
                                   padding=4,
                                   dilation=4,
                                   scale=8)
        self.conv = nn.Conv1d(channels * 3, POOL_CHANNELS, kernel_size=1)
        self.pool = build_pooling(pooling_func,
                                  POOL_CHANNELS,
                                  global_context_att=global_context_att)
        self.bn = nn.BatchNorm1d(self.pool.out_dim)
        self.linear = nn.Linear(self.pool.out_dim, embed_dim)
        self.emb_bn = emb_bn
        if emb_bn:
            self.bn2 = nn.BatchNorm1d(embed_dim)
        else:
            self.bn2 = nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        lengths: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """x: fbank [B, T, F]; lengths: valid frames [B] or None.

        Returns ``(out4 [B, C, T], embed [B, embed_dim])``.
        """
        x = x.permute(0, 2, 1)  # (B,T,F) -> (B,F,T)
        mask = frame_mask(lengths, x.shape[-1], x)
        out1 = apply_mask(self.layer1(apply_mask(x, mask)), mask)
        out2 = self.layer2(out1, lengths)
        out3 = self.layer3(out2, lengths)
        out4 = self.layer4(out3, lengths)

        out = F.relu(self.conv(torch.cat([out2, out3, out4], dim=1)))
        out = self.linear(self.bn(self.pool(out, lengths)))
        if self.emb_bn:
            out = self.bn2(out)
        return out4, out


# WeSpeaker's named sizes: name -> (channels, global-context attention).
ECAPA_VARIANTS = MappingProxyType({
    'ECAPA_TDNN_c1024': (1024, False),
    'ECAPA_TDNN_GLOB_c1024': (1024, True),
    'ECAPA_TDNN_c512': (512, False),
    'ECAPA_TDNN_GLOB_c512': (512, True),
})


def _named_ecapa(name: str) -> Callable[..., ECAPA_TDNN]:
    channels, global_context_att = ECAPA_VARIANTS[name]

    def build(feat_dim: int,
              embed_dim: int,
              pooling_func: str = 'ASTP',
              emb_bn: bool = False) -> ECAPA_TDNN:
        return ECAPA_TDNN(channels=channels,
                          feat_dim=feat_dim,
                          embed_dim=embed_dim,
                          pooling_func=pooling_func,
                          global_context_att=global_context_att,
                          emb_bn=emb_bn)

    build.__name__ = build.__qualname__ = name
    context = " and global-context attention" if global_context_att else ""
    build.__doc__ = f"ECAPA-TDNN with {channels} channels{context}."
    return build


ECAPA_TDNN_c1024 = _named_ecapa('ECAPA_TDNN_c1024')
ECAPA_TDNN_GLOB_c1024 = _named_ecapa('ECAPA_TDNN_GLOB_c1024')
ECAPA_TDNN_c512 = _named_ecapa('ECAPA_TDNN_c512')
ECAPA_TDNN_GLOB_c512 = _named_ecapa('ECAPA_TDNN_GLOB_c512')
