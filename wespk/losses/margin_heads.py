"""Classification heads ("projections") for speaker-embedding training.

Each head maps an embedding batch and its labels to logits for the
cross-entropy loss: ``head(embed, label) -> logits [B, num_class]``.  The
formulas, parameter names and quirks are WeSpeaker's (``projections.py``),
so WeSpeaker checkpoints (``projection.*`` keys) load and train alike.

* :class:`SoftmaxHead` -- BN -> ReLU -> Linear (WeSpeaker's ``Linear``);
  label smoothing belongs to the loss (:func:`wespk.losses.build_loss`).
* :class:`AddMarginProduct` -- AM-softmax / CosFace: ``s*(cos - m)`` on the
  target.
* :class:`ArcMarginProduct` -- AAM-softmax / ArcFace: ``s*cos(theta + m)``
  on the target, with WeSpeaker's threshold fallback or ``easy_margin``.
* :class:`ArcMarginProduct_intertopk_subcenter` -- ArcFace with K
  sub-centres per class and the inter-top-k penalty on hard negatives.
* :class:`SphereProduct` -- SphereFace (multiplicative angular margin).
* :class:`SphereFace2` -- binary-classification loss computed inside the
  head; returns ``(logits, loss)``.

Every head has ``update(margin)``, which the margin scheduler calls during
training (WeSpeaker builds the heads with margin 0 and ramps it up).  Heads
compute in float32 even under autocast.
"""

import logging
import math
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

logger = logging.getLogger(__name__)


def _cosine(embed: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Cosine similarities [B, rows] between embeddings and weight rows."""
    return F.linear(F.normalize(embed), F.normalize(weight))


def _target_one_hot(cosine: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Float one-hot of ``label`` shaped like ``cosine``."""
    one_hot = torch.zeros_like(cosine)
    return one_hot.scatter_(1, label.view(-1, 1).long(), 1.0)


def _sine(cosine: torch.Tensor) -> torch.Tensor:
    """sqrt(1 - cos^2); rounding that pushes |cos| above 1 gives 0, not NaN."""
    return torch.sqrt((1.0 - cosine.pow(2)).clamp(min=0.0))


def _arc_target_logit(cosine: torch.Tensor, sine: torch.Tensor, cos_m: float,
                      sin_m: float, th: float, mmm: float,
                      easy_margin: bool) -> torch.Tensor:
    """cos(theta + m), falling back to ``cos - mmm`` where ``cos <= th``
    (or to plain ``cos`` where ``cos <= 0`` with ``easy_margin``)."""
    phi = cosine * cos_m - sine * sin_m
    if easy_margin:
        return torch.where(cosine > 0, phi, cosine)
    return torch.where(cosine > th, phi, cosine - mmm)


class _Float32Head(nn.Module):
    """Base: runs :meth:`logits` in float32 with autocast disabled."""

    def forward(self, embed: torch.Tensor, label: torch.Tensor):
        """embed [B, D], label int [B] -> logits [B, num_class] (float32)."""
        with torch.autocast(device_type=embed.device.type, enabled=False):
            return self.logits(embed.float(), label)

    def logits(self, embed: torch.Tensor, label: torch.Tensor):
        """The head's computation on float32 inputs."""
        raise NotImplementedError


class SoftmaxHead(_Float32Head):
    """Plain softmax classifier: BatchNorm1d -> ReLU -> Linear (``trans``).

    WeSpeaker's ``Linear`` projection (``project_type: softmax``); the labels
    are ignored and there is no margin.
    """

    def __init__(self, emb_dim: int = 512, class_num: int = 1000):
        super().__init__()
        self.trans = nn.Sequential(nn.BatchNorm1d(emb_dim),
                                   nn.ReLU(inplace=True),
                                   nn.Linear(emb_dim, class_num))

    def update(self, margin: float) -> None:
        """No margin to set; accepted so a margin scheduler can treat all
        heads alike."""
        logger.debug('softmax head has no margin; update(%s) ignored', margin)

    def logits(self, embed: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """BN -> ReLU -> Linear of the embeddings; ``label`` is unused."""
        return self.trans(embed)


class AddMarginProduct(_Float32Head):
    """Additive cosine margin (AM-softmax, CosFace).

    ``logits = scale * (cos - margin * one_hot(label))`` with
    ``cos = normalize(x) @ normalize(W).T``.
    """

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 scale: float = 32.0,
                 margin: float = 0.2):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.scale = scale
        self.margin = margin
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.xavier_uniform_(self.weight)

    def update(self, margin: float) -> None:
        """Set the additive margin."""
        self.margin = margin

    def logits(self, embed: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Scaled cosines with the margin subtracted from the target column."""
        cosine = _cosine(embed, self.weight)
        one_hot = _target_one_hot(cosine, label)
        phi = cosine - self.margin
        output = one_hot * phi + (1.0 - one_hot) * cosine
        return output * self.scale

    def extra_repr(self) -> str:
        return (f'in_features={self.in_features}, '
                f'out_features={self.out_features}, scale={self.scale}, '
                f'margin={self.margin}')


class ArcMarginProduct(_Float32Head):
    """Additive angular margin (AAM-softmax, ArcFace).

    The target logit is ``scale * cos(theta + margin)``.  Past
    ``theta = pi - margin`` (``cos <= th``) it falls back to
    ``cos - (1 + cos(pi - margin))``, which keeps it monotone; with
    ``easy_margin`` the margin is applied only where ``cos > 0``.
    """

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 scale: float = 32.0,
                 margin: float = 0.2,
                 easy_margin: bool = False):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.scale = scale
        self.easy_margin = easy_margin
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.update(margin)

    def update(self, margin: float) -> None:
        """Set the angular margin and its derived constants."""
        self.margin = margin
        self.cos_m = math.cos(margin)
        self.sin_m = math.sin(margin)
        self.th = math.cos(math.pi - margin)
        self.mmm = 1.0 + math.cos(math.pi - margin)

    def logits(self, embed: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Scaled cosines with the angular margin on the target column."""
        cosine = _cosine(embed, self.weight)
        one_hot = _target_one_hot(cosine, label)
        phi = _arc_target_logit(cosine, _sine(cosine), self.cos_m,
                                self.sin_m, self.th, self.mmm,
                                self.easy_margin)
        output = one_hot * phi + (1.0 - one_hot) * cosine
        return output * self.scale

    def extra_repr(self) -> str:
        return (f'in_features={self.in_features}, '
                f'out_features={self.out_features}, scale={self.scale}, '
                f'margin={self.margin}, easy_margin={self.easy_margin}')


class ArcMarginProduct_intertopk_subcenter(_Float32Head):
    """ArcFace with sub-centres and the inter-top-k penalty.

    * ``weight`` is [K * out_features, in_features]; class c owns rows
      ``c*K .. c*K+K-1`` and its cosine is the maximum over them.
    * The target column gets ArcFace's ``cos(theta + margin)`` exactly as in
      :class:`ArcMarginProduct`.
    * The ``k_top`` largest non-target cosines get ``cos(theta - mp')``
      (hard negatives made harder), where ``mp' = mp * margin / 0.2`` is set
      by :meth:`update` (0 while ``margin <= 0.001``).
    * As in WeSpeaker the constructor leaves the penalty off (``mp' = 0``)
      whatever ``margin`` it is given; only :meth:`update` switches it on.
    * ``do_lm`` (large-margin fine-tuning) disables the penalty.

    References: arXiv:2110.05042 (inter-top-k), sub-center ArcFace (ECCV 2020).
    """

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 scale: float = 32.0,
                 margin: float = 0.2,
                 easy_margin: bool = False,
                 K: int = 3,
                 mp: float = 0.06,
                 k_top: int = 5,
                 do_lm: bool = False):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.scale = scale
        self.easy_margin = easy_margin
        self.K = K
        self.do_lm = do_lm
        self.mp = 0.0 if do_lm else mp
        self.k_top = 0 if do_lm else k_top
        self.weight = nn.Parameter(torch.empty(K * out_features, in_features))
        nn.init.xavier_uniform_(self.weight)
        self._set_margin(margin)
        self.cos_mp = 1.0
        self.sin_mp = 0.0

    def _set_margin(self, margin: float) -> None:
        self.margin = margin
        self.cos_m = math.cos(margin)
        self.sin_m = math.sin(margin)
        self.th = math.cos(math.pi - margin)
        self.mmm = 1.0 + math.cos(math.pi - margin)

    def update(self, margin: float) -> None:
        """Set the angular margin and scale the hard-negative margin with it."""
        self._set_margin(margin)
        hard_margin = self.mp * (margin / 0.2) if margin > 0.001 else 0.0
        self.cos_mp = math.cos(hard_margin)
        self.sin_mp = math.sin(hard_margin)

    def logits(self, embed: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Scaled sub-centre cosines with target margin and top-k penalty."""
        cosine = _cosine(embed, self.weight)
        cosine, _ = cosine.reshape(-1, self.out_features, self.K).max(dim=2)
        sine = _sine(cosine)
        phi = _arc_target_logit(cosine, sine, self.cos_m, self.sin_m, self.th,
                                self.mmm, self.easy_margin)
        one_hot = _target_one_hot(cosine, label)
        if self.k_top > 0:
            phi_mp = cosine * self.cos_mp + sine * self.sin_mp
            _, top_k_index = torch.topk(cosine - 2 * one_hot, self.k_top)
            top_k = torch.zeros_like(cosine).scatter_(1, top_k_index, 1.0)
            output = (one_hot * phi + top_k * phi_mp +
                      (1.0 - one_hot - top_k) * cosine)
        else:
            output = one_hot * phi + (1.0 - one_hot) * cosine
        return output * self.scale

    def extra_repr(self) -> str:
        return (f'in_features={self.in_features}, '
                f'out_features={self.out_features}, scale={self.scale}, '
                f'margin={self.margin}, easy_margin={self.easy_margin}, '
                f'K={self.K}, mp={self.mp}, k_top={self.k_top}, '
                f'do_lm={self.do_lm}')


class SphereProduct(_Float32Head):
    """Multiplicative angular margin (SphereFace / A-softmax).

    The target logit moves from ``cos(theta)`` towards
    ``psi(theta) = (-1)^k cos(m*theta) - 2k`` (``k = floor(m*theta/pi)``)
    by ``1 / (1 + lambda)``, where ``lambda = max(5, 1000 * (1 +
    0.12*iter)^-1)`` decays with the number of forward calls ``iter``.  All
    logits are scaled by the embedding norm (no fixed scale).  ``margin`` is
    the integer m (< 6); WeSpeaker's ``get_projection`` uses 4.
    """

    def __init__(self, in_features: int, out_features: int, margin: int = 2):
        super().__init__()
        if not 0 <= margin < 6:
            raise ValueError(f'SphereProduct margin must be in 0..5, '
                             f'got {margin}')
        self.in_features = in_features
        self.out_features = out_features
        self.margin = margin
        self.base = 1000.0
        self.gamma = 0.12
        self.power = 1
        self.lambda_min = 5.0
        self.iter = 0
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.xavier_uniform_(self.weight)

    def update(self, margin: float) -> None:
        """No-op: the integer margin is fixed and the annealing follows the
        call count; accepted so a margin scheduler can treat all heads alike."""
        logger.debug('SphereProduct keeps margin %d; update(%s) ignored',
                     self.margin, margin)

    def _cos_m_theta(self, cosine: torch.Tensor) -> torch.Tensor:
        """cos(m*theta) as the Chebyshev polynomial T_m(cos(theta))."""
        m = self.margin
        if m == 0:
            return torch.ones_like(cosine)
        if m == 1:
            return cosine
        if m == 2:
            return 2 * cosine**2 - 1
        if m == 3:
            return 4 * cosine**3 - 3 * cosine
        if m == 4:
            return 8 * cosine**4 - 8 * cosine**2 + 1
        return 16 * cosine**5 - 20 * cosine**3 + 5 * cosine

    def logits(self, embed: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Norm-scaled cosines with the annealed SphereFace target logit."""
        self.iter += 1
        lamb = max(self.lambda_min,
                   self.base * (1 + self.gamma * self.iter)**(-self.power))
        cosine = _cosine(embed, self.weight).clamp(-1, 1)
        cos_m_theta = self._cos_m_theta(cosine)
        theta = cosine.detach().acos()
        k = (self.margin * theta / 3.14159265).floor()
        phi = ((-1.0)**k) * cos_m_theta - 2 * k
        one_hot = _target_one_hot(cosine, label)
        output = one_hot * (phi - cosine) / (1 + lamb) + cosine
        return output * torch.norm(embed, 2, 1).view(-1, 1)

    def extra_repr(self) -> str:
        return (f'in_features={self.in_features}, '
                f'out_features={self.out_features}, margin={self.margin}')


class SphereFace2(_Float32Head):
    """SphereFace2: one-vs-all binary classification with a learnable bias.

    ``forward`` returns ``(logits, loss)``: ``logits = scale * (cos -
    margin*one_hot)`` for accuracy only, and the loss computed inside the
    head,

        loss = mean_b sum_c [ lanbuda * softplus(-z_pos) on the target,
                              (1 - lanbuda) * softplus(z_neg) elsewhere ],

    with ``g(z) = 2*((z+1)/2)^t - 1`` and, for ``margin_type`` 'C',
    ``z_pos/neg = scale*(g(cos) -/+ margin) + bias``; for 'A' the margin is
    angular (``cos(theta +/- margin)`` inside g).

    References: arXiv:2108.01513; Exploring binary classification loss for
    speaker verification (ICASSP 2023).
    """

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 scale: float = 32.0,
                 margin: float = 0.2,
                 lanbuda: float = 0.7,
                 t: int = 3,
                 margin_type: str = 'C'):
        super().__init__()
        if margin_type not in ('A', 'C'):
            raise ValueError(f"margin_type must be 'A' or 'C', "
                             f'got {margin_type!r}')
        self.in_features = in_features
        self.out_features = out_features
        self.scale = scale
        self.lanbuda = lanbuda
        self.t = t
        self.margin_type = margin_type
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.bias = nn.Parameter(torch.zeros(1, 1))
        self.update(margin)

    def update(self, margin: float) -> None:
        """Set the margin and its derived constants."""
        self.margin = margin
        self.cos_m = math.cos(margin)
        self.sin_m = math.sin(margin)
        self.th = math.cos(math.pi - margin)
        self.mmm = 1.0 + math.cos(math.pi - margin)

    def _g(self, z: torch.Tensor) -> torch.Tensor:
        return 2 * torch.pow((z + 1) / 2, self.t) - 1

    def logits(self, embed: torch.Tensor,
               label: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(accuracy logits [B, C], scalar loss)."""
        cosine = _cosine(embed, self.weight)
        bias = self.bias[0][0]
        if self.margin_type == 'A':
            sine = _sine(cosine)
            target = torch.where(cosine > self.th,
                                 cosine * self.cos_m - sine * self.sin_m,
                                 cosine - self.mmm)
            z_pos = self.scale * self._g(target) + bias
            z_neg = self.scale * self._g(cosine * self.cos_m +
                                         sine * self.sin_m) + bias
        else:
            g = self._g(cosine)
            z_pos = self.scale * (g - self.margin) + bias
            z_neg = self.scale * (g + self.margin) + bias
        loss_pos = self.lanbuda * F.softplus(-z_pos)
        loss_neg = (1 - self.lanbuda) * F.softplus(z_neg)
        one_hot = _target_one_hot(cosine, label)
        loss = (one_hot * loss_pos + (1 - one_hot) * loss_neg).sum(1).mean()
        output = self.scale * ((cosine - self.margin) * one_hot + cosine *
                               (1 - one_hot))
        return output, loss

    def extra_repr(self) -> str:
        return (f'in_features={self.in_features}, '
                f'out_features={self.out_features}, scale={self.scale}, '
                f'lanbuda={self.lanbuda}, margin={self.margin}, t={self.t}, '
                f'margin_type={self.margin_type}')
