"""Speaker models on a self-supervised frontend: frontend + aggregation + backend.

Registered in :mod:`wespk.models` as

* ``SSL_ASTP`` - ``superb`` or ``lap`` layer aggregation, attentive statistics
  pooling, BatchNorm and a linear embedding layer (LAP's recipe);
* ``SSL_ECAPA_TDNN_GLOB_c512`` - ``superb`` or ``lap``, then WeSpeaker's
  ECAPA_TDNN_GLOB_c512 on the aggregated features (``feat_dim`` is the
  aggregation's output size);
* ``SSL_MHFA`` - MHFA over all hidden states (BUT's backend).

``model_args`` (YAML)::

    model: SSL_MHFA
    model_args:
      frontend: wavlm                 # wavlm | hubert | wav2vec2
      frontend_args:                  # wespk.frontends.ssl_frontend.SSLFrontend
        model_dir: pretrained/wavlm_base_plus   # or config: {...} for random init
        frozen: true
      embed_dim: 256
      head_nb: 64                     # MHFA
      frontend_lr_ratio: 0.1          # the frontend's share of the learning rate

``forward(wav, lengths=None)`` takes waveforms ``[B, S]`` (or ``[B, S, 1]``,
the data pipeline's shape with ``dataset_args.frontend: waveform``) and valid
sample counts; it returns the embedding ``[B, embed_dim]``. State dict keys:
``frontend.model.*`` (HuggingFace names), ``aggregation.*``, ``back_end.*``
(for MHFA exactly the fork's ``back_end.weights_k`` ...).
"""

from types import MappingProxyType
from typing import Any, Mapping, Optional

import torch
import torch.nn as nn

from wespk.frontends.aggregation import MHFA, build_aggregation
from wespk.frontends.ssl_frontend import frontend_from_args
from wespk.models.masking import frame_mask
from wespk.models.pooling import build_pooling, time_mean

#: The input the models of this module take (the extraction engine reads it).
INPUT_KIND = "waveform"


class PoolingBackend(nn.Module):
    """Temporal pooling (ASTP by default) -> BatchNorm1d -> Linear (``pool``, ``bn``, ``linear``)."""

    def __init__(self, in_dim: int, embed_dim: int, pooling_func: str = "ASTP"):
        super().__init__()
        self.pool = build_pooling(pooling_func, in_dim)
        self.bn = nn.BatchNorm1d(self.pool.out_dim)
        self.linear = nn.Linear(self.pool.out_dim, embed_dim)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [B, C, T] -> [B, embed_dim]."""
        return self.linear(self.bn(self.pool(x, lengths)))


class SSLSpeakerModel(nn.Module):
    """An SSL frontend, a layer aggregation and a speaker backend.

    Args:
        backend: ``astp``, ``ecapa_tdnn_glob_c512`` or ``mhfa``.
        frontend, frontend_args: see :class:`~wespk.frontends.ssl_frontend.SSLFrontend`.
        layer_aggregation: ``superb`` or ``lap`` (for MHFA: how its keys and
            values combine the layers).
        aggregation_args: LAP's ``out_dim``, ``num_heads``, ``dropout``.
        embed_dim: embedding size.
        feature_cmn: subtract the per-utterance mean (over valid frames) of the
            aggregated features before the backend (WeSpeaker's ``cmvn`` on
            SSL features; ECAPA only by default).
        head_nb, compression_dim: MHFA's heads and compressed size.
        frontend_lr_ratio: the frontend's learning rate as a fraction of the
            rest's (the trainer's parameter groups).
        feature_grad_mult: BUT's name for the same thing; both given must agree.
        emb_bn: ECAPA's BatchNorm on the embedding.
        pooling_func: the pooling layer of the ``astp`` and ECAPA backends
            (WeSpeaker's names, ASTP by default); ``MHFA`` for ``mhfa``.
        feat_dim: accepted for WeSpeaker configs (``-1``: follows from the
            frontend); any other value must equal the aggregated size.
    """

    input_kind = INPUT_KIND

    def __init__(self,
                 backend: str,
                 frontend: str = "wavlm",
                 frontend_args: Optional[Mapping[str, Any]] = None,
                 layer_aggregation: str = "superb",
                 aggregation_args: Optional[Mapping[str, Any]] = None,
                 embed_dim: int = 256,
                 feature_cmn: Optional[bool] = None,
                 head_nb: int = 64,
                 compression_dim: int = 128,
                 frontend_lr_ratio: Optional[float] = None,
                 feature_grad_mult: Optional[float] = None,
                 emb_bn: bool = False,
                 pooling_func: str = "ASTP",
                 feat_dim: int = -1):
        super().__init__()
        self.frontend = frontend_from_args(frontend, frontend_args)
        num_layers, hidden = self.frontend.num_layers, self.frontend.hidden_size
        if frontend_lr_ratio is not None and feature_grad_mult is not None \
                and float(frontend_lr_ratio) != float(feature_grad_mult):
            raise ValueError(f"model_args: frontend_lr_ratio {frontend_lr_ratio} and feature_grad_mult "
                             f"{feature_grad_mult} disagree (they are the same setting)")
        ratio = frontend_lr_ratio if frontend_lr_ratio is not None else feature_grad_mult
        self.frontend_lr_ratio = 1.0 if ratio is None else float(ratio)
        self.backend_name = backend
        aggregation_args = dict(aggregation_args or {})
        if backend == "mhfa":
            if pooling_func != "MHFA":
                raise ValueError(f"SSL_MHFA pools with MHFA; model_args.pooling_func {pooling_func!r} is not it")
            if aggregation_args and layer_aggregation != "lap":
                raise ValueError("model_args.aggregation_args is for layer_aggregation 'lap'")
            names = {"out_dim": "lap_dim", "num_heads": "lap_heads", "dropout": "lap_dropout"}
            unknown = sorted(set(aggregation_args) - set(names))
            if unknown:
                raise ValueError(f"unknown aggregation_args key(s) {unknown} for 'lap'; known: {list(names)}")
            lap = {names[k]: v for k, v in aggregation_args.items()}
            self.aggregation = None
            self.back_end = MHFA(num_layers, hidden, head_nb=head_nb, compression_dim=compression_dim,
                                 embed_dim=embed_dim, layer_aggregation=layer_aggregation, **lap)
            self.feature_cmn = False
            aggregated = hidden
        else:
            self.aggregation = build_aggregation(layer_aggregation, num_layers, hidden, **aggregation_args)
            aggregated = self.aggregation.out_dim
            if feat_dim not in (-1, None) and int(feat_dim) != aggregated:
                raise ValueError(f"model_args.feat_dim {feat_dim} differs from the frontend's aggregated "
                                 f"size {aggregated}; use -1")
            if backend == "astp":
                self.back_end = PoolingBackend(aggregated, embed_dim, pooling_func)
                self.feature_cmn = bool(feature_cmn) if feature_cmn is not None else False
            elif backend == "ecapa_tdnn_glob_c512":
                from wespk.models.ecapa_tdnn import ECAPA_TDNN_GLOB_c512
                self.back_end = ECAPA_TDNN_GLOB_c512(feat_dim=aggregated, embed_dim=embed_dim,
                                                     pooling_func=pooling_func, emb_bn=emb_bn)
                self.feature_cmn = bool(feature_cmn) if feature_cmn is not None else True
            else:
                raise ValueError(f"unknown SSL backend {backend!r}")
        self.feat_dim = aggregated
        self.embed_dim = embed_dim

    def forward(self, wav: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """wav: [B, S] or [B, S, 1]; lengths: valid samples [B] or None -> embedding [B, embed_dim]."""
        hidden, frames = self.frontend(wav, lengths)
        ragged = lengths is not None and bool((frames != hidden.shape[2]).any())
        frame_lengths = frames if ragged else None
        if self.aggregation is None:
            return self.back_end(hidden, frame_lengths)
        feats = self.aggregation(hidden, frame_lengths)  # [B, C, T]
        if self.feature_cmn:
            feats = feats - time_mean(feats, frame_lengths).unsqueeze(-1)
            mask = frame_mask(frame_lengths, feats.shape[-1], feats)
            if mask is not None:
                feats = feats * mask
        if self.backend_name == "ecapa_tdnn_glob_c512":
            return self.back_end(feats.transpose(1, 2), frame_lengths)[-1]
        return self.back_end(feats, frame_lengths)


def _named(backend: str, name: str, doc: str, pooling: str = "ASTP"):
    def build(feat_dim: int = -1, embed_dim: int = 256, pooling_func: str = pooling,
              **model_args: Any) -> SSLSpeakerModel:
        return SSLSpeakerModel(backend, feat_dim=feat_dim, embed_dim=embed_dim, pooling_func=pooling_func,
                               **model_args)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = doc
    return build


SSL_ASTP = _named("astp", "SSL_ASTP", "SSL frontend + superb/lap aggregation + ASTP, BN, linear.")
SSL_ECAPA_TDNN_GLOB_c512 = _named("ecapa_tdnn_glob_c512", "SSL_ECAPA_TDNN_GLOB_c512",
                                  "SSL frontend + superb/lap aggregation + ECAPA_TDNN_GLOB_c512.")
SSL_MHFA = _named("mhfa", "SSL_MHFA", "SSL frontend + MHFA (superb or lap keys and values).", "MHFA")

#: Registry entries (name -> constructor) for :mod:`wespk.models`.
SSL_MODELS = MappingProxyType({"SSL_ASTP": SSL_ASTP, "SSL_ECAPA_TDNN_GLOB_c512": SSL_ECAPA_TDNN_GLOB_c512,
                               "SSL_MHFA": SSL_MHFA})
