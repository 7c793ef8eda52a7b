"""Export a model dir's encoder and keep the file only when it passes the parity check.

The steps shared by the ONNX and the TorchScript export: load the PyTorch
model of the model dir, compute the check utterance's features with the
model dir's front end, write the export under a temporary name next to the
output, load it back with its runtime, compare with PyTorch
(:mod:`wespk.export.parity`), and only then rename it to the output name.
A copy of ``config.yaml`` is put next to the output, so that the output's
directory is itself a model dir (``config.yaml`` + ``final.onnx``).
"""

import contextlib
import logging
import os
import tempfile
from typing import Any, Callable, Dict, Optional

import torch

from wespk.inference.frontend import build_frontend
from wespk.export.parity import DEFAULT_TOLERANCE, ParityReport, check_features, check_parity, parity_cases
from wespk.inference.model_dir import load_speaker_model, resolve_model_dir
from wespk.inference.runners import EagerRunner
from wespk.io.files import atomic_output

logger = logging.getLogger(__name__)


def load_eager_model(model_dir: str, checkpoint: Optional[str] = None, device: str = "cpu",
                     trust_checkpoint: bool = False):
    """``(model, config)`` of a model dir's PyTorch checkpoint (never a TorchScript file)."""
    resolved = resolve_model_dir(model_dir, "torch", model_file=checkpoint)
    return load_speaker_model(resolved.model_dir, resolved.model_file, device, trust_checkpoint)


def copy_config_next_to(output: str, model_dir: str) -> Optional[str]:
    """Write the model dir's ``config.yaml`` next to ``output`` unless the same file is already there."""
    source = os.path.join(model_dir, "config.yaml")
    target = os.path.join(os.path.dirname(os.path.abspath(output)), "config.yaml")
    if os.path.exists(target) and os.path.samefile(source, target):
        return None
    with open(source, encoding="utf-8") as f:
        text = f.read()
    if os.path.isfile(target):
        with open(target, encoding="utf-8") as f:
            if f.read() == text:
                return None
        logger.warning("replacing %s with the config of %s", target, model_dir)
    with atomic_output(target) as f:
        f.write(text)
    return target


def export_checked(model_dir: str, output: str, write_export: Callable[[torch.nn.Module, Dict[str, Any], str], None],
                   load_runner: Callable[[str, Dict[str, Any]], Any], backend_label: str,
                   check_wav: Optional[str] = None, checkpoint: Optional[str] = None,
                   tolerance: float = DEFAULT_TOLERANCE, trust_checkpoint: bool = False) -> ParityReport:
    """Export, check parity, keep the output only on success; returns the parity report.

    ``write_export(model, config, path)`` writes the exported file;
    ``load_runner(path, config)`` returns an object with ``embed_features``.
    Raises :class:`~wespk.export.parity.ParityError` (and leaves no output
    file) when the exported model differs from PyTorch by more than
    ``tolerance``.
    """
    model, config = load_eager_model(model_dir, checkpoint, trust_checkpoint=trust_checkpoint)
    frontend = build_frontend(config)
    wav, feats = check_features(check_wav, frontend)
    reference = EagerRunner(model, config)
    out_dir = os.path.dirname(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(output)}.", suffix=".tmp", dir=out_dir)
    os.close(fd)
    try:
        write_export(model, config, tmp)
        runner = load_runner(tmp, config)
        report = check_parity(reference.embed_features, runner.embed_features, parity_cases(feats),
                              backend_label, wav, tolerance)
        os.replace(tmp, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    copied = copy_config_next_to(output, model_dir)
    if copied:
        logger.info("wrote %s so that %s is a model dir", copied, out_dir)
    logger.info("exported %s", output)
    return report
