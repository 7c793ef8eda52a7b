"""Kaldi-style TDNN x-vector (WeSpeaker's ``tdnn.py``, model name ``XVEC``).

Five frame-level TDNN layers (unpadded 1-D convolutions with contexts
5, 3 (dilation 2), 3 (dilation 3), 1, 1, each Conv -> ReLU -> BN without
affine parameters), statistics pooling, then ``seg_1`` -> ReLU ->
``seg_bn_1`` (no affine) -> ``seg_2``.

``forward`` returns ``(embed_a, embed_b)``; WeSpeaker extracts
``outputs[-1]``, i.e. ``embed_b`` (the ``seg_2`` output), not Kaldi's
``seg_1`` output.

The convolutions are unpadded, so the first ``L - 14`` output frames of an
utterance of L valid frames only see valid input; with ``lengths`` the
pooling keeps exactly those frames, so no further masking is needed.
"""

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from wespk.models.pooling import build_pooling


class TdnnLayer(nn.Module):
    """Unpadded dilated Conv1d -> ReLU -> BatchNorm1d(affine=False)."""

    def __init__(self,
                 in_dim: int,
                 out_dim: int,
                 context_size: int,
                 dilation: int = 1,
                 padding: int = 0):
        super().__init__()
        # frames lost at the ends of the utterance
        self.context_frames = dilation * (context_size - 1) - 2 * padding
        self.conv_1d = nn.Conv1d(in_dim,
                                 out_dim,
                                 context_size,
                                 dilation=dilation,
                                 padding=padding)
        # affine=False as in Kaldi's x-vector recipe
        self.bn = nn.BatchNorm1d(out_dim, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, T] -> [B, out_dim, T - dilation*(context_size-1)]."""
        return self.bn(F.relu(self.conv_1d(x)))


class XVEC(nn.Module):
    """TDNN x-vector speaker model.

    Args:
        feat_dim: fbank dimension.
        hid_dim: width of frame layers 1-4.
        stats_dim: width of frame layer 5 (the pooled features).
        embed_dim: embedding size.
        pooling_func: pooling layer name.
    """

    def __init__(self,
                 feat_dim: int = 40,
                 hid_dim: int = 512,
                 stats_dim: int = 1500,
                 embed_dim: int = 512,
                 pooling_func: str = 'TSTP'):
        super().__init__()
        self.feat_dim = feat_dim
        self.stats_dim = stats_dim
        self.embed_dim = embed_dim
        self.frame_1 = TdnnLayer(feat_dim, hid_dim, context_size=5, dilation=1)
        self.frame_2 = TdnnLayer(hid_dim, hid_dim, context_size=3, dilation=2)
        self.frame_3 = TdnnLayer(hid_dim, hid_dim, context_size=3, dilation=3)
        self.frame_4 = TdnnLayer(hid_dim, hid_dim, context_size=1, dilation=1)
        self.frame_5 = TdnnLayer(hid_dim,
                                 stats_dim,
                                 context_size=1,
                                 dilation=1)
        self.context_frames = sum(
            layer.context_frames for layer in (self.frame_1, self.frame_2,
                                               self.frame_3, self.frame_4,
                                               self.frame_5))
        self.pool = build_pooling(pooling_func, stats_dim)
        self.seg_1 = nn.Linear(self.pool.out_dim, embed_dim)
        self.seg_bn_1 = nn.BatchNorm1d(embed_dim, affine=False)
        self.seg_2 = nn.Linear(embed_dim, embed_dim)

    def forward(
        self,
        x: torch.Tensor,
        lengths: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """x: fbank [B, T, F]; lengths: valid frames [B] or None.

        Returns ``(embed_a, embed_b)``; the embedding is ``embed_b``.
        """
        out = x.permute(0, 2, 1)  # (B,T,F) -> (B,F,T)
        out = self.frame_1(out)
        out = self.frame_2(out)
        out = self.frame_3(out)
        out = self.frame_4(out)
        out = self.frame_5(out)
        if lengths is not None:
            lengths = lengths - self.context_frames
        stats = self.pool(out, lengths)
        embed_a = self.seg_1(stats)
        embed_b = self.seg_2(self.seg_bn_1(F.relu(embed_a)))
        return embed_a, embed_b
