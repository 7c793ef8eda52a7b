"""Export a speaker encoder to TorchScript.

The encoder is traced (RepVGG fused first) and wrapped in a small scripted
module whose ``forward(feats [B, T, F], lengths: Optional[Tensor] = None)``
returns the embedding ``[B, D]``; without ``lengths`` every utterance is
taken to be ``T`` frames long. GE2E models export their partial-window
encoder ``forward(windows [W, P, F]) -> [W, D]`` (see
:mod:`wespk.export.encoder`). The graph kind and the model dir's config are
stored in the archive as extra files.
"""

import logging
import warnings
from typing import Any, Dict, Optional

import torch
import torch.nn as nn

from wespk.export.encoder import UTTERANCE_KIND, prepare_export_module
from wespk.export.parity import DEFAULT_TOLERANCE, ParityReport
from wespk.inference.runners import JIT_CONFIG_FILE, JIT_KIND_FILE, TorchScriptRunner, config_to_text
from wespk.io.files import atomic_output

logger = logging.getLogger(__name__)


class OptionalLengthsEncoder(nn.Module):
    """Scripted front of a traced utterance encoder: ``lengths`` may be omitted."""

    def __init__(self, traced: torch.jit.ScriptModule):
        super().__init__()
        self.encoder = traced

    def forward(self, feats: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        if lengths is None:
            lengths = torch.full((feats.shape[0],), feats.shape[1], dtype=torch.long, device=feats.device)
        return self.encoder(feats, lengths)


def export_torchscript(model: torch.nn.Module, config: Dict[str, Any], output: str) -> str:
    """Trace ``model`` (eval mode) and save it to ``output`` (atomically); returns the graph kind."""
    spec = prepare_export_module(model, config)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings; the parity check proves the graph
        traced = torch.jit.trace(spec.module, spec.example_inputs, check_trace=False)
    module = torch.jit.script(OptionalLengthsEncoder(traced)) if spec.kind == UTTERANCE_KIND else traced
    extra = {JIT_KIND_FILE: spec.kind, JIT_CONFIG_FILE: config_to_text(config)}
    with atomic_output(output, "wb") as f:
        torch.jit.save(module, f, _extra_files=extra)
    logger.info("wrote TorchScript %s encoder to %s", spec.kind, output)
    return spec.kind


def export_model_dir_to_torchscript(model_dir: str, output: str, check_wav: Optional[str] = None,
                                    checkpoint: Optional[str] = None,
                                    tolerance: float = DEFAULT_TOLERANCE,
                                    trust_checkpoint: bool = False) -> ParityReport:
    """Export a model dir's encoder to TorchScript and check it against PyTorch on real audio.

    Raises :class:`~wespk.export.parity.ParityError` (no file is left) when
    the TorchScript embeddings differ from PyTorch's by more than ``tolerance``.
    """
    from wespk.export.checked_export import export_checked
    return export_checked(model_dir, output, write_export=export_torchscript,
                          load_runner=lambda path, config: TorchScriptRunner(path, config),
                          backend_label="TorchScript", check_wav=check_wav, checkpoint=checkpoint,
                          tolerance=tolerance, trust_checkpoint=trust_checkpoint)
