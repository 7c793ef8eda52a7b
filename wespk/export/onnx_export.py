"""Export a speaker encoder to ONNX (dynamic batch and time axes).

The graph takes ``feats`` ``[B, T, F]`` (float32) and ``lengths`` ``[B]``
(int64; pass ``T`` for every utterance of an unpadded batch) and returns
``embedding`` ``[B, D]``; GE2E models export their partial-window encoder
instead (see :mod:`wespk.export.encoder`). The file's metadata holds the
graph kind and the model dir's config, so the file alone is enough for
:class:`wespk.inference.runners.OnnxRunner`.

The export uses PyTorch's TorchScript-based ONNX exporter (``dynamo=False``),
which needs no extra packages.
"""

import io
import logging
import warnings
from typing import Any, Dict, Optional

import torch

from wespk.export.encoder import prepare_export_module
from wespk.export.parity import DEFAULT_TOLERANCE, ParityReport
from wespk.inference.runners import CONFIG_KEY, KIND_KEY, OnnxRunner, config_to_text
from wespk.io.files import atomic_output

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17


def export_onnx(model: torch.nn.Module, config: Dict[str, Any], output: str, opset: int = DEFAULT_OPSET) -> str:
    """Write ``model`` (eval mode) as an ONNX encoder to ``output`` (atomically); returns its kind."""
    import onnx
    spec = prepare_export_module(model, config)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # Tracer warnings flag Python ints taken from tensor shapes; the parity
        # check on other shapes is what proves the graph right.
        warnings.simplefilter("ignore")
        torch.onnx.export(spec.module, spec.example_inputs, buffer, input_names=spec.input_names,
                          output_names=spec.output_names, dynamic_axes=spec.dynamic_axes,
                          opset_version=int(opset), do_constant_folding=True, dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in ((KIND_KEY, spec.kind), (CONFIG_KEY, config_to_text(config))):
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    proto.producer_name = "wespk"
    onnx.checker.check_model(proto)
    with atomic_output(output, "wb") as f:
        f.write(proto.SerializeToString())
    logger.info("wrote ONNX %s graph (opset %d) to %s", spec.kind, opset, output)
    return spec.kind


def export_model_dir_to_onnx(model_dir: str, output: str, check_wav: Optional[str] = None,
                             opset: int = DEFAULT_OPSET, checkpoint: Optional[str] = None,
                             tolerance: float = DEFAULT_TOLERANCE, trust_checkpoint: bool = False) -> ParityReport:
    """Export a model dir's encoder to ``output`` and check it against PyTorch on real audio.

    Raises :class:`~wespk.export.parity.ParityError` (no file is left) when
    ONNX Runtime's embeddings differ from PyTorch's by more than ``tolerance``.
    """
    from wespk.export.checked_export import export_checked
    return export_checked(model_dir, output,
                          write_export=lambda model, config, path: export_onnx(model, config, path, opset),
                          load_runner=lambda path, config: OnnxRunner(path, config),
                          backend_label="ONNX Runtime", check_wav=check_wav, checkpoint=checkpoint,
                          tolerance=tolerance, trust_checkpoint=trust_checkpoint)
