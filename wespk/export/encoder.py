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
  it stays outside the graph, in
  :class:`wespk.inference.runners.PartialWindowPlanner` (beside the runners),
  which places them with the model's own ``partial_window_starts``.
"""

import dataclasses
import logging
from typing import Dict, List, Tuple

import torch
import torch.nn as nn

from wespk.inference.runners import PARTIAL_WINDOWS_KIND, UTTERANCE_KIND, is_partial_window_model

logger = logging.getLogger(__name__)

#: Frames and batch of the synthetic example the graph is traced with. The
#: lengths differ so the traced graph holds the masking path; the parity
#: check then runs other batch sizes and lengths.
TRACE_FRAMES = 240
TRACE_LENGTHS = (240, 157)
#: Samples of the trace example of waveform (SSL) models.
TRACE_SAMPLES = (16000, 10467)


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
    from wespk.inference.frontend import input_kind
    if input_kind(config) == "waveform":
        # SSL models take samples [B, S]: 1 s and about 0.65 s at 16 kHz (lengths differ, so the
        # masking path is traced)
        feats = 0.1 * torch.randn(len(TRACE_SAMPLES), TRACE_SAMPLES[0], generator=generator)
        lengths, time_axis = torch.tensor(TRACE_SAMPLES, dtype=torch.long), "samples"
    else:
        feats = torch.randn(len(TRACE_LENGTHS), TRACE_FRAMES, feat_dim, generator=generator)
        lengths, time_axis = torch.tensor(TRACE_LENGTHS, dtype=torch.long), "frames"
    return ExportModule(module=UtteranceEncoder(model).eval(), kind=UTTERANCE_KIND,
                        example_inputs=(feats, lengths), input_names=["feats", "lengths"],
                        output_names=["embedding"],
                        dynamic_axes={"feats": {0: "batch", 1: time_axis}, "lengths": {0: "batch"},
                                      "embedding": {0: "batch"}})
