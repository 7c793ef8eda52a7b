"""Generalized end-to-end (GE2E) loss (Wan et al., ICASSP 2018).

A batch holds N speakers with M utterances each; their embeddings come as
``[N, M, D]``. Every utterance ``e_ji`` (speaker j, utterance i) is compared
with every speaker centroid by cosine similarity, scaled and shifted by the
learnable ``w`` and ``b``::

    S[j, i, k] = w * cos(e_ji, c_k) + b

where ``c_k`` is the mean of speaker k's embeddings, except for the
utterance's own speaker, whose centroid leaves the utterance out
(``c_j^(-i)``, the mean of the other M - 1). ``w`` is kept above 1e-6 so
that a larger similarity always means a larger score.

* ``softmax``: ``L_ji = -S[j, i, j] + log sum_k exp(S[j, i, k])`` (cross
  entropy of the utterance against the speakers);
* ``contrast``: ``L_ji = 1 - sigmoid(S[j, i, j]) + max_{k != j} sigmoid(S[j, i, k])``.

The loss is the mean of ``L_ji`` over the N * M utterances (the paper sums;
the mean keeps the learning rate independent of the batch shape).
"""

import logging
from typing import Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

logger = logging.getLogger(__name__)

GE2E_LOSS_METHODS = ("softmax", "contrast")
MIN_SCALE = 1e-6


class GE2ELoss(nn.Module):
    """GE2E loss over embeddings ``[N speakers, M utterances, D]``.

    Args:
        init_w: initial similarity scale ``w`` (the paper's 10).
        init_b: initial similarity bias ``b`` (the paper's -5).
        loss_method: ``'softmax'`` or ``'contrast'``.

    ``forward(embeddings, return_accuracy=False)`` returns the loss, or
    ``(loss, accuracy)`` where accuracy is the fraction of utterances whose
    highest-scoring centroid is their own speaker's (a training-time proxy
    for verification quality that needs no EER computation).

    ``w`` is clamped to at least 1e-6 in the forward pass with a
    straight-through gradient: the value used is clamped, the gradient
    reaches the parameter unchanged, so ``w`` can recover after an
    optimizer step takes it below the bound.
    """

    def __init__(self, init_w: float = 10.0, init_b: float = -5.0, loss_method: str = "softmax"):
        super().__init__()
        if loss_method not in GE2E_LOSS_METHODS:
            raise ValueError(f"unknown GE2E loss_method {loss_method!r}; choose from {', '.join(GE2E_LOSS_METHODS)}")
        self.w = nn.Parameter(torch.tensor(float(init_w)))
        self.b = nn.Parameter(torch.tensor(float(init_b)))
        self.loss_method = loss_method

    def similarity_matrix(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Scaled similarities ``S`` ``[N, M, N]`` (see the module docstring)."""
        if embeddings.dim() != 3:
            raise ValueError(f"GE2E expects embeddings [N speakers, M utterances, D], got shape "
                             f"{tuple(embeddings.shape)}")
        num_speakers, num_utts, _ = embeddings.shape
        if num_speakers < 2 or num_utts < 2:
            raise ValueError(f"GE2E needs at least 2 speakers with 2 utterances each, got "
                             f"{num_speakers} x {num_utts}")
        embeddings = embeddings.float()
        totals = embeddings.sum(dim=1)                                       # [N, D]
        centroids = totals / num_utts                                         # [N, D]
        own_centroids = (totals[:, None, :] - embeddings) / (num_utts - 1)    # [N, M, D]
        unit = F.normalize(embeddings, dim=-1)
        cos_all = torch.einsum("jid,kd->jik", unit, F.normalize(centroids, dim=-1))
        cos_own = (unit * F.normalize(own_centroids, dim=-1)).sum(dim=-1)   # [N, M]
        same = torch.eye(num_speakers, dtype=torch.bool, device=embeddings.device)[:, None, :]
        cosine = torch.where(same, cos_own[:, :, None], cos_all)
        w = self.w + (self.w.clamp(min=MIN_SCALE) - self.w).detach()
        return w * cosine + self.b

    def forward(self, embeddings: torch.Tensor, return_accuracy: bool = False
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        sim = self.similarity_matrix(embeddings)
        num_speakers, num_utts, _ = sim.shape
        target = torch.arange(num_speakers, device=sim.device)[:, None].expand(num_speakers, num_utts)
        if self.loss_method == "softmax":
            loss = F.cross_entropy(sim.reshape(-1, num_speakers), target.reshape(-1))
        else:
            prob = torch.sigmoid(sim)
            own = prob.gather(2, target[:, :, None]).squeeze(2)
            others = prob.masked_fill(
                torch.eye(num_speakers, dtype=torch.bool, device=sim.device)[:, None, :], float("-inf"))
            loss = (1.0 - own + others.max(dim=2).values).mean()
        if not return_accuracy:
            return loss
        accuracy = (sim.argmax(dim=2) == target).float().mean().detach()
        return loss, accuracy

    def extra_repr(self) -> str:
        return f"loss_method={self.loss_method!r}"
