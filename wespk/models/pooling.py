"""Temporal pooling layers: frame-level features -> one vector per utterance.

The layers take ``x`` of shape [B, C, T] (TDNN-style) or [B, C, F, T]
(ResNet-style; the (C, F) axes are flattened channel-major after pooling) and
an optional ``lengths`` LongTensor [B] of valid frames along the last axis.
With ``lengths`` the statistics ignore padded frames; without it the
computation is WeSpeaker's, operation for operation, so checkpoints trained
with WeSpeaker give the same embeddings.

Numerics (WeSpeaker ``pooling_layers.py``):

* standard deviations are ``sqrt(var + 1e-7)`` with the unbiased variance
  (divisor T-1); with lengths the divisor is L-1 (at least 1);
* attentive pooling takes ``sqrt(clamp(sum(alpha*x^2) - mean^2, 1e-7))``.

Parameter names (``linear1``, ``linear2``, ``n_query.{q}.heads_att_trans``)
follow WeSpeaker so checkpoints load unchanged.
"""

import logging
from types import MappingProxyType
from typing import Optional, Tuple

import torch
import torch.nn as nn

from wespk.models.masking import frame_mask

logger = logging.getLogger(__name__)


def _flatten_channels(x: torch.Tensor) -> torch.Tensor:
    """[B, C, F, T] -> [B, C*F, T]; 3-D input is returned unchanged."""
    if x.dim() == 4:
        return x.reshape(x.shape[0], x.shape[1] * x.shape[2], x.shape[3])
    return x


def time_mean_std(x: torch.Tensor,
                  lengths: Optional[torch.Tensor] = None,
                  eps: float = 1e-7) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation over the last axis.

    The standard deviation is ``sqrt(unbiased_var + eps)``.  With
    ``lengths`` only the first ``lengths[b]`` frames of utterance b count
    and the variance divisor is ``max(L-1, 1)``.

    Returns:
        (mean, std), each with the last axis removed.
    """
    if lengths is None:
        mean = x.mean(dim=-1)
        std = torch.sqrt(torch.var(x, dim=-1) + eps)
        return mean, std
    mask = frame_mask(lengths, x.shape[-1], x)
    assert mask is not None
    count = mask.sum(dim=-1)
    mean = (x * mask).sum(dim=-1) / count
    centred = (x - mean.unsqueeze(-1)) * mask
    var = centred.pow(2).sum(dim=-1) / (count - 1).clamp(min=1)
    return mean, torch.sqrt(var + eps)


def time_mean(x: torch.Tensor,
              lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean over the last axis, over the valid frames when ``lengths`` is given."""
    if lengths is None:
        return x.mean(dim=-1)
    mask = frame_mask(lengths, x.shape[-1], x)
    assert mask is not None
    return (x * mask).sum(dim=-1) / mask.sum(dim=-1)


def _attentive_stats(x: torch.Tensor,
                     scores: torch.Tensor,
                     lengths: Optional[torch.Tensor],
                     eps: float = 1e-7) -> torch.Tensor:
    """Softmax-over-time weighted mean and std of ``x`` [B, C, T].

    ``scores`` [B, C or 1, T] are the attention logits; padded frames get
    zero weight when ``lengths`` is given.
    """
    mask = frame_mask(lengths, x.shape[-1], x)
    if mask is not None:
        scores = scores.masked_fill(mask == 0, float('-inf'))
    alpha = torch.softmax(scores, dim=2)
    mean = torch.sum(alpha * x, dim=2)
    var = torch.sum(alpha * (x**2), dim=2) - mean**2
    std = torch.sqrt(var.clamp(min=eps))
    return torch.cat([mean, std], dim=1)


class TAP(nn.Module):
    """Temporal average pooling: the mean over time."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = in_dim

    def forward(self,
                x: torch.Tensor,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, T] or [B, C, F, T] -> [B, out_dim]."""
        return time_mean(x, lengths).flatten(start_dim=1)


class TSDP(nn.Module):
    """Temporal standard-deviation pooling: the std over time only."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = in_dim

    def forward(self,
                x: torch.Tensor,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, T] or [B, C, F, T] -> [B, out_dim]."""
        _, std = time_mean_std(x, lengths)
        return std.flatten(start_dim=1)


class TSTP(nn.Module):
    """Temporal statistics pooling (x-vector): concatenated mean and std."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = in_dim * 2

    def forward(self,
                x: torch.Tensor,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, T] or [B, C, F, T] -> [B, out_dim]."""
        mean, std = time_mean_std(x, lengths)
        return torch.cat((mean.flatten(start_dim=1), std.flatten(start_dim=1)),
                         dim=1)


class ASTP(nn.Module):
    """Attentive statistics pooling (ECAPA-TDNN).

    Per-channel attention ``softmax_t(linear2(tanh(linear1(x_in))))``; with
    ``global_context_att`` the attention input is ``cat(x, mean_t(x),
    std_t(x))``, so ``linear1`` takes ``3 * in_dim`` channels.
    """

    def __init__(self,
                 in_dim: int,
                 bottleneck_dim: int = 128,
                 global_context_att: bool = False):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = in_dim * 2
        self.global_context_att = global_context_att
        attention_in = in_dim * 3 if global_context_att else in_dim
        self.linear1 = nn.Conv1d(attention_in, bottleneck_dim, kernel_size=1)
        self.linear2 = nn.Conv1d(bottleneck_dim, in_dim, kernel_size=1)

    def forward(self,
                x: torch.Tensor,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, T] or [B, C, F, T] -> [B, out_dim]."""
        x = _flatten_channels(x)
        if self.global_context_att:
            mean, std = time_mean_std(x, lengths)
            x_in = torch.cat((x, mean.unsqueeze(-1).expand_as(x),
                              std.unsqueeze(-1).expand_as(x)),
                             dim=1)
        else:
            x_in = x
        scores = self.linear2(torch.tanh(self.linear1(x_in)))
        return _attentive_stats(x, scores, lengths)


class MHASTP(nn.Module):
    """Multi-head attentive statistics pooling.

    The channels are split into ``head_num`` chunks; each chunk has its own
    small attention network ``heads_att_trans.{h}`` (``layer_num`` 1x1
    convolutions with tanh between them).  ``d_s > 1`` gives one attention
    weight per channel (vector attention), ``d_s == 1`` one per head.
    """

    def __init__(self,
                 in_dim: int,
                 layer_num: int = 2,
                 head_num: int = 2,
                 d_s: int = 1,
                 bottleneck_dim: int = 64):
        super().__init__()
        if in_dim % head_num != 0:
            raise ValueError(
                f'in_dim {in_dim} is not divisible by head_num {head_num}')
        self.in_dim = in_dim
        self.out_dim = in_dim * 2
        self.head_num = head_num
        head_dim = in_dim // head_num
        score_dim = head_dim if d_s > 1 else 1
        channels = [head_dim] + [bottleneck_dim] * (layer_num - 1) + [score_dim]
        heads = []
        for _ in range(head_num):
            attention = nn.Sequential()
            for i in range(layer_num):
                attention.add_module(f'att_{i}',
                                     nn.Conv1d(channels[i], channels[i + 1], 1))
                if i < layer_num - 1:
                    attention.add_module(f'tanh{i}', nn.Tanh())
            heads.append(attention)
        self.heads_att_trans = nn.ModuleList(heads)

    def forward(self,
                x: torch.Tensor,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, T] or [B, C, F, T] -> [B, out_dim]."""
        x = _flatten_channels(x)
        chunks = torch.chunk(x, self.head_num, dim=1)
        pooled = []
        for i, attention in enumerate(self.heads_att_trans):
            pooled.append(
                _attentive_stats(chunks[i], attention(chunks[i]), lengths))
        return torch.cat(pooled, dim=1)


class MQMHASTP(nn.Module):
    """Multi-query multi-head attentive statistics pooling.

    ``query_num`` independent :class:`MHASTP` modules (``n_query.{q}``)
    whose outputs are concatenated (arXiv:2110.05042).
    """

    def __init__(self,
                 in_dim: int,
                 layer_num: int = 2,
                 query_num: int = 2,
                 head_num: int = 8,
                 d_s: int = 2,
                 bottleneck_dim: int = 64):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = in_dim * 2 * query_num
        self.n_query = nn.ModuleList([
            MHASTP(in_dim,
                   layer_num=layer_num,
                   head_num=head_num,
                   d_s=d_s,
                   bottleneck_dim=bottleneck_dim) for _ in range(query_num)
        ])

    def forward(self,
                x: torch.Tensor,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, T] or [B, C, F, T] -> [B, out_dim]."""
        x = _flatten_channels(x)
        pooled = []
        for query in self.n_query:
            pooled.append(query(x, lengths))
        return torch.cat(pooled, dim=-1)


POOLING_LAYERS = MappingProxyType({
    'TAP': TAP,
    'TSDP': TSDP,
    'TSTP': TSTP,
    'ASTP': ASTP,
    'MHASTP': MHASTP,
    'MQMHASTP': MQMHASTP,
})


def build_pooling(name: str,
                  in_dim: int,
                  global_context_att: bool = False) -> nn.Module:
    """Build a pooling layer by WeSpeaker name (``pooling_func``).

    Args:
        name: one of :data:`POOLING_LAYERS` (TAP, TSDP, TSTP, ASTP, MHASTP,
            MQMHASTP).
        in_dim: channels of the frame-level input (C*F for 4-D input).
        global_context_att: ASTP only: add utterance mean and std to the
            attention input.  Other layers have no attention context and
            ignore it, as in WeSpeaker (ECAPA's ``_GLOB_`` names set it
            whatever the pooling).

    Raises:
        ValueError: for an unknown name.
    """
    if name not in POOLING_LAYERS:
        raise ValueError(f'unknown pooling_func {name!r}; '
                         f'known: {", ".join(POOLING_LAYERS)}')
    if name == 'ASTP':
        return ASTP(in_dim, global_context_att=global_context_att)
    if global_context_att:
        logger.debug('pooling %s has no attention context; '
                     'global_context_att ignored', name)
    return POOLING_LAYERS[name](in_dim)
