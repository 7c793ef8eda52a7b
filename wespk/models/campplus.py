"""CAM++ speaker embedding extractor (WeSpeaker's ``campplus.py``).

A 2-D front-end (FCM: a small ResNet whose strides act on frequency only)
followed by a densely connected TDNN whose layers carry context-aware masks
(CAM): each layer's output is gated by ``sigmoid(linear2(relu(linear1(
mean_t(x) + seg_pool(x)))))``, where ``seg_pool`` averages 100-frame
segments (a partial last segment over its valid frames only).  The first TDNN
layer has stride 2 in time.  Statistics pooling and a 1x1 conv with a
non-affine BN give the embedding; ``forward`` returns that tensor.

With ``lengths``, padded frames are zeroed before every convolution with
temporal context, and the CAM means, the segment averages and the pooling use
the valid frames only (lengths follow the stride-2 TDNN layer).

Module names (``head.*``, ``xvector.tdnn``, ``xvector.block{1,2,3}.tdnnd{i}``,
``xvector.transit{1,2,3}``, ``xvector.out_nonlinear``, ``xvector.stats``,
``xvector.dense``) follow WeSpeaker.
"""

from collections import OrderedDict
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from wespk.models.masking import apply_mask, conv_output_lengths, frame_mask
from wespk.models.pooling import build_pooling, time_mean
from wespk.models.resnet import BasicBlock

SEGMENT_FRAMES = 100


def get_nonlinear(config_str: str, channels: int) -> nn.Sequential:
    """Build WeSpeaker's ``nonlinear`` Sequential from e.g. ``'batchnorm-relu'``.

    Parts: ``batchnorm`` (affine BN), ``batchnorm_`` (BN without affine),
    ``relu``, ``prelu``; submodules are named ``batchnorm``, ``relu``,
    ``prelu``.
    """
    nonlinear = nn.Sequential()
    for name in config_str.split('-'):
        if name == 'relu':
            nonlinear.add_module('relu', nn.ReLU(inplace=True))
        elif name == 'prelu':
            nonlinear.add_module('prelu', nn.PReLU(channels))
        elif name == 'batchnorm':
            nonlinear.add_module('batchnorm', nn.BatchNorm1d(channels))
        elif name == 'batchnorm_':
            nonlinear.add_module('batchnorm',
                                 nn.BatchNorm1d(channels, affine=False))
        else:
            raise ValueError(f'unexpected nonlinearity {name!r} in '
                             f'{config_str!r}')
    return nonlinear


def segment_average(x: torch.Tensor,
                    lengths: Optional[torch.Tensor] = None,
                    segment_frames: int = SEGMENT_FRAMES) -> torch.Tensor:
    """Average ``x`` [B, C, T] over consecutive segments, expanded per frame.

    Each frame gets the mean of its ``segment_frames``-long segment; the
    last, partial segment is averaged over its valid frames (WeSpeaker's
    ``avg_pool1d(..., ceil_mode=True)``).  With ``lengths`` the padded frames
    are excluded from every segment; ``x`` must already be zero there.
    """
    num_frames = x.shape[-1]
    if lengths is None:
        seg = F.avg_pool1d(x,
                           kernel_size=segment_frames,
                           stride=segment_frames,
                           ceil_mode=True)
    else:
        num_segments = (num_frames + segment_frames - 1) // segment_frames
        padded = F.pad(x, [0, num_segments * segment_frames - num_frames])
        sums = padded.reshape(x.shape[0], x.shape[1], num_segments,
                              segment_frames).sum(dim=-1)
        starts = torch.arange(num_segments,
                              device=lengths.device) * segment_frames
        counts = (lengths.unsqueeze(1) - starts.unsqueeze(0)).clamp(
            min=1, max=segment_frames)
        seg = sums / counts.unsqueeze(1).to(x.dtype)
    shape = seg.shape
    seg = seg.unsqueeze(-1).expand(shape[0], shape[1], shape[2],
                                   segment_frames).reshape(
                                       shape[0], shape[1], -1)
    return seg[..., :num_frames]


class TDNNLayer(nn.Module):
    """Conv1d (``linear``) -> ``nonlinear``; ``padding=-1`` means 'same'."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int = 1,
                 padding: int = 0,
                 dilation: int = 1,
                 bias: bool = False,
                 config_str: str = 'batchnorm-relu'):
        super().__init__()
        if padding < 0:
            if kernel_size % 2 != 1:
                raise ValueError(
                    f'same padding needs an odd kernel, got {kernel_size}')
            padding = (kernel_size - 1) // 2 * dilation
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.linear = nn.Conv1d(in_channels,
                                out_channels,
                                kernel_size,
                                stride=stride,
                                padding=padding,
                                dilation=dilation,
                                bias=bias)
        self.nonlinear = get_nonlinear(config_str, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, T] with padded frames zeroed."""
        return self.nonlinear(self.linear(x))


class CAMLayer(nn.Module):
    """Context-aware masking: local conv gated by utterance/segment context."""

    def __init__(self,
                 bn_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int,
                 padding: int,
                 dilation: int,
                 bias: bool,
                 reduction: int = 2):
        super().__init__()
        self.linear_local = nn.Conv1d(bn_channels,
                                      out_channels,
                                      kernel_size,
                                      stride=stride,
                                      padding=padding,
                                      dilation=dilation,
                                      bias=bias)
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.linear2 = nn.Conv1d(bn_channels // reduction, out_channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self,
                x: torch.Tensor,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, T]; lengths: valid frames [B] or None."""
        x = apply_mask(x, frame_mask(lengths, x.shape[-1], x))
        y = self.linear_local(x)
        context = time_mean(x, lengths).unsqueeze(-1) + segment_average(
            x, lengths)
        context = self.relu(self.linear1(context))
        return y * self.sigmoid(self.linear2(context))


class CAMDenseTDNNLayer(nn.Module):
    """BN-ReLU -> 1x1 bottleneck -> BN-ReLU -> CAM layer."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 bn_channels: int,
                 kernel_size: int,
                 stride: int = 1,
                 dilation: int = 1,
                 bias: bool = False,
                 config_str: str = 'batchnorm-relu'):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f'CAM layers need an odd kernel, got {kernel_size}')
        padding = (kernel_size - 1) // 2 * dilation
        self.nonlinear1 = get_nonlinear(config_str, in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = get_nonlinear(config_str, bn_channels)
        self.cam_layer = CAMLayer(bn_channels,
                                  out_channels,
                                  kernel_size,
                                  stride=stride,
                                  padding=padding,
                                  dilation=dilation,
                                  bias=bias)

    def forward(self,
                x: torch.Tensor,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, T] -> [B, out_channels, T]."""
        x = self.linear1(self.nonlinear1(x))
        return self.cam_layer(self.nonlinear2(x), lengths)


class CAMDenseTDNNBlock(nn.ModuleList):
    """Densely connected CAM layers ``tdnnd1..N``: each layer's output is
    concatenated to its input."""

    def __init__(self,
                 num_layers: int,
                 in_channels: int,
                 out_channels: int,
                 bn_channels: int,
                 kernel_size: int,
                 stride: int = 1,
                 dilation: int = 1,
                 bias: bool = False,
                 config_str: str = 'batchnorm-relu'):
        super().__init__()
        for i in range(num_layers):
            self.add_module(
                f'tdnnd{i + 1}',
                CAMDenseTDNNLayer(in_channels=in_channels + i * out_channels,
                                  out_channels=out_channels,
                                  bn_channels=bn_channels,
                                  kernel_size=kernel_size,
                                  stride=stride,
                                  dilation=dilation,
                                  bias=bias,
                                  config_str=config_str))

    def forward(self,
                x: torch.Tensor,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, T] -> [B, C + num_layers*out_channels, T]."""
        for layer in self:
            x = torch.cat([x, layer(x, lengths)], dim=1)
        return x


class TransitLayer(nn.Module):
    """``nonlinear`` -> 1x1 Conv1d (``linear``)."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 bias: bool = True,
                 config_str: str = 'batchnorm-relu'):
        super().__init__()
        self.nonlinear = get_nonlinear(config_str, in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, T]."""
        return self.linear(self.nonlinear(x))


class DenseLayer(nn.Module):
    """1x1 Conv1d (``linear``) -> ``nonlinear``, for [B, C] or [B, C, T]."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 bias: bool = False,
                 config_str: str = 'batchnorm-relu'):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=bias)
        self.nonlinear = get_nonlinear(config_str, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C] or [B, C, T]."""
        if x.dim() == 2:
            x = self.linear(x.unsqueeze(dim=-1)).squeeze(dim=-1)
        else:
            x = self.linear(x)
        return self.nonlinear(x)


class FCM(nn.Module):
    """2-D front-end: 3x3 stem, two stages of frequency-strided residual
    blocks and a frequency-strided 3x3 conv; frequency is then folded into
    channels.  Time resolution is unchanged."""

    #: batch norms that directly follow a conv in forward() (see wespk.inference.optimize)
    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"))

    def __init__(self,
                 num_blocks: List[int],
                 m_channels: int = 32,
                 feat_dim: int = 80):
        super().__init__()
        self.conv1 = nn.Conv2d(1,
                               m_channels,
                               kernel_size=3,
                               stride=1,
                               padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        # WeSpeaker builds both stages with num_blocks[0] blocks.
        self.layer1 = self._make_layer(m_channels, num_blocks[0])
        self.layer2 = self._make_layer(m_channels, num_blocks[0])
        self.conv2 = nn.Conv2d(m_channels,
                               m_channels,
                               kernel_size=3,
                               stride=(2, 1),
                               padding=1,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(m_channels)
        self.out_channels = m_channels * (feat_dim // 8)

    @staticmethod
    def _make_layer(channels: int, num_blocks: int) -> nn.ModuleList:
        blocks = [BasicBlock(channels, channels, (2 if i == 0 else 1, 1))
                  for i in range(num_blocks)]
        return nn.ModuleList(blocks)

    def forward(self,
                x: torch.Tensor,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, F, T] -> [B, out_channels, T], padded frames zeroed."""
        x = x.unsqueeze(1)
        mask = frame_mask(lengths, x.shape[-1], x)
        out = apply_mask(F.relu(self.bn1(self.conv1(apply_mask(x, mask)))),
                         mask)
        for block in self.layer1:
            out = block(out, mask, mask)
        for block in self.layer2:
            out = block(out, mask, mask)
        out = apply_mask(F.relu(self.bn2(self.conv2(out))), mask)
        shape = out.shape
        return out.reshape(shape[0], shape[1] * shape[2], shape[3])


class CAMPPlus(nn.Module):
    """CAM++ speaker model.

    Args:
        feat_dim: fbank dimension.
        embed_dim: embedding size.
        pooling_func: pooling layer name (WeSpeaker uses TSTP).
        growth_rate: output channels of each CAM dense layer.
        bn_size: bottleneck multiplier (bottleneck = bn_size * growth_rate).
        init_channels: channels of the first TDNN layer.
        config_str: nonlinearity spec of the TDNN layers.
    """

    def __init__(self,
                 feat_dim: int = 80,
                 embed_dim: int = 512,
                 pooling_func: str = 'TSTP',
                 growth_rate: int = 32,
                 bn_size: int = 4,
                 init_channels: int = 128,
                 config_str: str = 'batchnorm-relu'):
        super().__init__()
        self.head = FCM(num_blocks=[2, 2], feat_dim=feat_dim)
        channels = self.head.out_channels
        self.xvector = nn.Sequential(
            OrderedDict([
                ('tdnn',
                 TDNNLayer(channels,
                           init_channels,
                           5,
                           stride=2,
                           dilation=1,
                           padding=-1,
                           config_str=config_str)),
            ]))
        channels = init_channels
        for i, (num_layers, kernel_size, dilation) in enumerate(
                zip((12, 24, 16), (3, 3, 3), (1, 2, 2))):
            self.xvector.add_module(
                f'block{i + 1}',
                CAMDenseTDNNBlock(num_layers=num_layers,
                                  in_channels=channels,
                                  out_channels=growth_rate,
                                  bn_channels=bn_size * growth_rate,
                                  kernel_size=kernel_size,
                                  dilation=dilation,
                                  config_str=config_str))
            channels = channels + num_layers * growth_rate
            self.xvector.add_module(
                f'transit{i + 1}',
                TransitLayer(channels,
                             channels // 2,
                             bias=False,
                             config_str=config_str))
            channels //= 2
        self.xvector.add_module('out_nonlinear',
                                get_nonlinear(config_str, channels))
        self.pool = build_pooling(pooling_func, channels)
        self.xvector.add_module('stats', self.pool)
        self.xvector.add_module(
            'dense',
            DenseLayer(self.pool.out_dim, embed_dim, config_str='batchnorm_'))

        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight.data)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self,
                x: torch.Tensor,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: fbank [B, T, F]; lengths: valid frames [B] or None.

        Returns the embedding [B, embed_dim].
        """
        x = self.head(x.permute(0, 2, 1), lengths)  # (B,T,F) -> (B,F,T)
        tdnn = self.xvector.tdnn
        x = tdnn(x)
        lengths = conv_output_lengths(lengths, tdnn.kernel_size, tdnn.stride,
                                      tdnn.padding, tdnn.dilation)
        x = self.xvector.block1(x, lengths)
        x = self.xvector.transit1(x)
        x = self.xvector.block2(x, lengths)
        x = self.xvector.transit2(x)
        x = self.xvector.block3(x, lengths)
        x = self.xvector.transit3(x)
        x = self.xvector.out_nonlinear(x)
        x = self.xvector.stats(x, lengths)
        return self.xvector.dense(x)
