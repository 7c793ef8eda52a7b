"""Layer aggregation of SSL hidden states ``[B, D, T, L]``, length-masked.

* :class:`SuperbWeightedSum` (``superb``): one softmax-normalised weight per
  layer, equal at the start (SUPERB, Yang et al. 2021);
* :class:`LayerAttentivePooling` (``lap``): per frame and per head, a gate
  for every layer from the mean and max over the head's channels through a
  squeeze-excitation MLP shared by both statistics, then the max over layers
  of the gated features (Kim et al., "Rethinking Leveraging Pre-Trained
  Multi-Layer Representations for Speaker Verification", Interspeech 2025);
* :class:`MHFA`: multi-head factorised attentive pooling (Peng et al., SLT
  2022): layer-weighted keys and values, compressed, H attention heads over
  time, concatenated, then a linear layer to the embedding. Its parameter
  names are those of BUT's WeSpeaker fork (``weights_k``, ``weights_v``,
  ``cmp_linear_k``, ``cmp_linear_v``, ``att_head``, ``pooling_fc``); with
  ``layer_aggregation='lap'`` keys and values come from two LAP modules
  (``l_pool_k``, ``l_pool_v``) instead of the two weight vectors.

The first two return frame-level features ``[B, D', T]``; every operation is
per frame, so padded frames never reach valid ones (BatchNorm in eval mode is
per channel). MHFA's softmax over time ignores padded frames when lengths are
given, so a padded batch gives the same embeddings as one utterance at a time.
"""

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F



def _check_layers(x: torch.Tensor, num_layers: int, where: str) -> None:
    if x.dim() != 4 or x.shape[-1] != num_layers:
        raise ValueError(f"{where}: expected hidden states [B, D, T, {num_layers}], got {tuple(x.shape)}")


class SuperbWeightedSum(nn.Module):
    """``sum_l softmax(w)_l * x[..., l]``; ``layer_weights`` start equal."""

    def __init__(self, num_layers: int, in_dim: int):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.num_layers = num_layers
        self.out_dim = in_dim
        self.layer_weights = nn.Parameter(torch.full((num_layers,), 1.0 / num_layers))

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, D, T, L] -> [B, D, T] (``lengths`` unused: the sum is per frame)."""
        _check_layers(x, self.num_layers, "superb")
        return torch.matmul(x, torch.softmax(self.layer_weights, dim=0))


class LayerAttentivePooling(nn.Module):
    """Layer Attentive Pooling: per-frame, per-head gates over the layers.

    ``in_norm`` (BatchNorm2d) and ``in_weight`` (1x1 conv; identity for one
    head) on ``[B, D, T, L]``; the D channels split into ``num_heads`` heads;
    for each frame, head and layer the mean and the max over the head's
    channels go through the head's MLP ``L -> L//2 -> L`` (``sq_weight``,
    ``sq_bias``, ReLU, ``ex_weight``, ``ex_bias``), shared by both statistics;
    the gate is ``sigmoid(f(mean) + f(max))`` (with dropout); the output is the
    max over layers of the gated features, then ``out_weight`` (1x1 conv) and
    ``out_norm`` (BatchNorm1d) to ``out_dim`` channels.
    """

    def __init__(self, num_layers: int, in_dim: int, out_dim: int = 512, num_heads: int = 8,
                 dropout: float = 0.1):
        super().__init__()
        if in_dim % num_heads != 0:
            raise ValueError(f"lap: in_dim {in_dim} is not divisible by num_heads {num_heads}")
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.out_dim = out_dim
        squeezed = max(num_layers // 2, 1)
        self.in_norm = nn.BatchNorm2d(in_dim)
        self.in_weight = nn.Conv2d(in_dim, in_dim, kernel_size=1) if num_heads > 1 else nn.Identity()
        self.sq_weight = nn.Parameter(torch.randn(num_heads, num_layers, squeezed))
        self.sq_bias = nn.Parameter(torch.zeros(num_heads, 1, squeezed))
        self.ex_weight = nn.Parameter(torch.randn(num_heads, squeezed, num_layers))
        self.ex_bias = nn.Parameter(torch.zeros(num_heads, 1, num_layers))
        self.dropout = nn.Dropout(dropout)
        self.out_weight = nn.Conv1d(in_dim, out_dim, kernel_size=1)
        self.out_norm = nn.BatchNorm1d(out_dim)

    def _excite(self, stats: torch.Tensor) -> torch.Tensor:
        """stats [B, T, H, L] -> [B, T, H, L] through each head's MLP."""
        hidden = F.relu(torch.einsum("bthl,hls->bths", stats, self.sq_weight) + self.sq_bias[:, 0])
        return torch.einsum("bths,hsl->bthl", hidden, self.ex_weight) + self.ex_bias[:, 0]

    def _heads_and_gates(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        _check_layers(x, self.num_layers, "lap")
        batch, dim, frames, layers = x.shape
        x = self.in_weight(self.in_norm(x))
        heads = x.reshape(batch, self.num_heads, dim // self.num_heads, frames, layers)
        heads = heads.permute(0, 3, 1, 2, 4)  # [B, T, H, d, L]
        mean = heads.mean(dim=3)
        peak = heads.amax(dim=3)
        gates = self.dropout(torch.sigmoid(self._excite(mean) + self._excite(peak)))  # [B, T, H, L]
        return heads, gates

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """The layer gates ``[B, H, T, L]`` of hidden states ``x`` [B, D, T, L]."""
        return self._heads_and_gates(x)[1].permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, D, T, L] -> [B, out_dim, T]; padded frames are zeroed when ``lengths`` is given."""
        heads, gates = self._heads_and_gates(x)
        pooled = (heads * gates.unsqueeze(3)).amax(dim=-1)  # [B, T, H, d]
        batch, frames = pooled.shape[:2]
        pooled = pooled.reshape(batch, frames, -1).transpose(1, 2)  # [B, D, T]
        out = self.out_norm(self.out_weight(pooled))
        if lengths is None:
            return out
        valid = torch.arange(out.shape[-1], device=out.device)[None, :] < lengths[:, None]
        return out * valid[:, None, :].to(out.dtype)


class MHFA(nn.Module):
    """Multi-head factorised attentive pooling: hidden states -> embedding.

    Keys and values are layer-weighted sums (``weights_k``, ``weights_v``,
    softmax-normalised, starting at ones) - or LAP outputs with
    ``layer_aggregation='lap'`` - compressed to ``compression_dim`` by
    ``cmp_linear_k``/``cmp_linear_v``; ``att_head`` gives ``head_nb``
    attention logits per frame, softmax over the valid frames; each head pools
    the compressed values; the heads are concatenated and ``pooling_fc`` maps
    them to ``embed_dim``.
    """

    def __init__(self, num_layers: int, in_dim: int, head_nb: int = 64, compression_dim: int = 128,
                 embed_dim: int = 256, layer_aggregation: str = "superb", lap_dim: int = 512,
                 lap_heads: int = 8, lap_dropout: float = 0.1):
        super().__init__()
        self.num_layers = num_layers
        self.layer_aggregation = layer_aggregation
        if layer_aggregation == "superb":
            self.weights_k = nn.Parameter(torch.ones(num_layers))
            self.weights_v = nn.Parameter(torch.ones(num_layers))
            key_dim = in_dim
        elif layer_aggregation == "lap":
            self.l_pool_k = LayerAttentivePooling(num_layers, in_dim, lap_dim, lap_heads, lap_dropout)
            self.l_pool_v = LayerAttentivePooling(num_layers, in_dim, lap_dim, lap_heads, lap_dropout)
            key_dim = lap_dim
        else:
            raise ValueError(f"MHFA layer_aggregation must be 'superb' or 'lap', got {layer_aggregation!r}")
        self.head_nb = head_nb
        self.cmp_linear_k = nn.Linear(key_dim, compression_dim)
        self.cmp_linear_v = nn.Linear(key_dim, compression_dim)
        self.att_head = nn.Linear(compression_dim, head_nb)
        self.pooling_fc = nn.Linear(head_nb * compression_dim, embed_dim)
        self.out_dim = embed_dim

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, D, T, L]; lengths: valid frames [B] or None -> [B, embed_dim]."""
        _check_layers(x, self.num_layers, "MHFA")
        if self.layer_aggregation == "superb":
            keys = torch.matmul(x, torch.softmax(self.weights_k, dim=0)).transpose(1, 2)  # [B, T, D]
            values = torch.matmul(x, torch.softmax(self.weights_v, dim=0)).transpose(1, 2)
        else:
            keys = self.l_pool_k(x, lengths).transpose(1, 2)
            values = self.l_pool_v(x, lengths).transpose(1, 2)
        keys = self.cmp_linear_k(keys)
        values = self.cmp_linear_v(values)  # [B, T, C]
        logits = self.att_head(keys)  # [B, T, H]
        if lengths is not None:
            valid = torch.arange(logits.shape[1], device=logits.device)[None, :] < lengths[:, None]
            logits = logits.masked_fill(~valid[:, :, None], float("-inf"))
        attention = torch.softmax(logits, dim=1)
        pooled = torch.einsum("bth,btc->bhc", attention, values)  # [B, H, C]
        return self.pooling_fc(pooled.reshape(pooled.shape[0], -1))


#: ``layer_aggregation`` names of the frame-level aggregators.
AGGREGATORS = {"superb": SuperbWeightedSum, "lap": LayerAttentivePooling}


def build_aggregation(name: str, num_layers: int, in_dim: int, **kwargs) -> nn.Module:
    """``superb`` or ``lap`` over ``num_layers`` hidden states of ``in_dim`` channels."""
    if name not in AGGREGATORS:
        raise ValueError(f"unknown layer_aggregation {name!r}; known: {', '.join(AGGREGATORS)}")
    if name == "superb":
        if kwargs:
            raise ValueError(f"layer_aggregation 'superb' takes no aggregation_args, got {sorted(kwargs)}")
        return SuperbWeightedSum(num_layers, in_dim)
    known = ("out_dim", "num_heads", "dropout")
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise ValueError(f"unknown aggregation_args key(s) {unknown} for 'lap'; known: {list(known)}")
    return LayerAttentivePooling(num_layers, in_dim, **kwargs)
