"""The module that gets exported, and how it is called.

Two kinds of graph are exported (the kind is stored in the exported file):

* ``utterance`` - every fbank model (TDNN, ECAPA, ResNet, RepVGG, CAM++):
  ``embedding[B, D] = graph(feats[B, T, F], lengths[B])`` with dynamic
  batch and time axes. Padded frames are masked by the model, so a padded
  batch gives the embeddings of its utterances one by one. Only the
  embedding leaves the graph (not ResNet's first output nor a
  classification head). RepVGG is fused into its deploy form first.
* ``partial_windows`` - models that embed fixed-length windows and average
  them (the GE2E LSTM): ``partials[W, D] = graph(windows[W, P, F])``. The
  placement of the windows depends on each utterance's length in Python, so
  it stays outside the graph, in :class:`PartialWindowPlanner`, which places
  them with the model's own ``partial_window_starts``.
"""

import dataclasses
import logging
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

logger = logging.getLogger(__name__)

UTTERANCE_KIND = "utterance"
PARTIAL_WINDOWS_KIND = "partial_windows"
EXPORT_KINDS = (UTTERANCE_KIND, PARTIAL_WINDOWS_KIND)

#: Frames and batch of the synthetic example the graph is traced with. The
#: lengths differ so the traced graph holds the masking path; the parity
#: check then runs other batch sizes and lengths.
TRACE_FRAMES = 240
TRACE_LENGTHS = (240, 157)


class UtteranceEncoder(nn.Module):
    """``(feats [B, T, F], lengths [B]) -> embedding [B, D]`` around a speaker model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        from wespk.models import embedding_from_output
        return embedding_from_output(self.model(feats, lengths))


class PartialWindowEncoder(nn.Module):
    """``windows [W, P, F] -> partial embeddings [W, D]`` (the model's ``embed_partials``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.model.embed_partials(windows)


def is_partial_window_model(model: nn.Module) -> bool:
    """True for models that embed partial windows and average them (GE2E)."""
    return callable(getattr(model, "embed_partials", None)) and \
        callable(getattr(model, "partial_window_starts", None))


def has_repvgg_blocks(model: nn.Module) -> bool:
    from wespk.models.repvgg import RepSPKBlock, RepVGGBlock
    return any(isinstance(m, (RepVGGBlock, RepSPKBlock)) for m in model.modules())


@dataclasses.dataclass
class ExportModule:
    """What to trace: the module, its kind, an example input and the graph's axis names."""

    module: nn.Module
    kind: str
    example_inputs: Tuple[torch.Tensor, ...]
    input_names: List[str]
    output_names: List[str]
    dynamic_axes: Dict[str, Dict[int, str]]


def feature_dim(model: nn.Module, config: Dict) -> int:
    """Input feature dimension: ``model_args.feat_dim`` or the front end's mel bins."""
    model_args = config.get("model_args") or {}
    if "feat_dim" in model_args:
        return int(model_args["feat_dim"])
    dataset_args = config.get("dataset_args") or {}
    fbank_args = dataset_args.get("fbank_args") or {}
    return int(fbank_args.get("num_mel_bins", dataset_args.get("num_mel_bins", 80)))


def prepare_export_module(model: nn.Module, config: Dict) -> ExportModule:
    """Wrap an eval-mode speaker model for export (RepVGG is fused into a deploy copy).

    The input model is not modified.
    """
    model = model.eval()
    feat_dim = feature_dim(model, config)
    generator = torch.Generator().manual_seed(0)
    if is_partial_window_model(model):
        frames = int(model.partial_frames)
        windows = torch.randn(3, frames, feat_dim, generator=generator).abs()
        return ExportModule(module=PartialWindowEncoder(model).eval(), kind=PARTIAL_WINDOWS_KIND,
                            example_inputs=(windows,), input_names=["windows"], output_names=["partials"],
                            dynamic_axes={"windows": {0: "num_windows", 1: "frames"},
                                          "partials": {0: "num_windows"}})
    if has_repvgg_blocks(model):
        from wespk.models.repvgg import convert_to_deploy
        model = convert_to_deploy(model)
    feats = torch.randn(len(TRACE_LENGTHS), TRACE_FRAMES, feat_dim, generator=generator)
    lengths = torch.tensor(TRACE_LENGTHS, dtype=torch.long)
    return ExportModule(module=UtteranceEncoder(model).eval(), kind=UTTERANCE_KIND,
                        example_inputs=(feats, lengths), input_names=["feats", "lengths"],
                        output_names=["embedding"],
                        dynamic_axes={"feats": {0: "batch", 1: "frames"}, "lengths": {0: "batch"},
                                      "embedding": {0: "batch"}})


def pad_features(feats: Sequence[torch.Tensor]) -> Tuple[np.ndarray, np.ndarray]:
    """Zero-padded float32 batch ``[B, T_max, F]`` and int64 lengths ``[B]``."""
    if not feats:
        raise ValueError("no feature matrices to batch")
    lengths = np.array([int(f.shape[0]) for f in feats], dtype=np.int64)
    batch = np.zeros((len(feats), int(lengths.max()), int(feats[0].shape[1])), dtype=np.float32)
    for i, f in enumerate(feats):
        batch[i, : f.shape[0]] = np.asarray(f, dtype=np.float32)
    return batch, lengths


class PartialWindowPlanner:
    """Cuts utterances into the partial windows of a GE2E-style model and averages them back.

    Mirrors the model's ``embed_utterances``: window starts come from the
    model's ``partial_window_starts`` over ``length - trailing_frames``
    frames; frames past an utterance's end read as zeros; the utterance
    embedding is the L2-normalised mean of its windows' embeddings.
    """

    def __init__(self, model: nn.Module):
        if not is_partial_window_model(model):
            raise TypeError(f"{type(model).__name__} does not embed partial windows")
        self.model = model
        self.partial_frames = int(model.partial_frames)
        self.trailing_frames = int(getattr(model, "trailing_frames", 0))

    def windows(self, feats: Sequence[torch.Tensor]) -> Tuple[np.ndarray, np.ndarray]:
        """``(windows [W, P, F] float32, owners [W] int64)`` for a list of ``[T_i, F]`` features."""
        blocks, owners = [], []
        for index, f in enumerate(feats):
            f = np.asarray(f, dtype=np.float32)
            length = f.shape[0]
            starts = self.model.partial_window_starts(max(0, length - self.trailing_frames))
            span = max(length, max(starts) + self.partial_frames)
            padded = np.zeros((span, f.shape[1]), dtype=np.float32)
            padded[:length] = f
            for start in starts:
                blocks.append(padded[start:start + self.partial_frames])
                owners.append(index)
        return np.stack(blocks), np.array(owners, dtype=np.int64)

    @staticmethod
    def combine(partials: np.ndarray, owners: np.ndarray, batch_size: int) -> np.ndarray:
        """L2-normalised mean of each utterance's window embeddings, ``[B, D]`` float32."""
        partials = torch.as_tensor(np.asarray(partials, dtype=np.float32))
        index = torch.as_tensor(owners, dtype=torch.long)
        sums = partials.new_zeros(batch_size, partials.shape[1]).index_add_(0, index, partials)
        counts = torch.bincount(index, minlength=batch_size).to(partials.dtype)
        return torch.nn.functional.normalize(sums / counts[:, None], p=2, dim=1).numpy()
