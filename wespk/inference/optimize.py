"""Make an eval-mode encoder faster without changing what it computes.

Two rewrites, both exact up to float rounding (embeddings agree with the
original to a cosine of 1 within 1e-6):

* **Batch-norm folding.** A ``BatchNorm`` that directly follows a convolution
  is, in eval mode, an affine map per channel, so it is folded into that
  convolution's weight and bias and replaced by ``nn.Identity``; this saves a
  full pass over every activation. Which pairs qualify is declared next to the
  ``forward`` that uses them, by a class attribute
  ``conv_bn_pairs = (("conv1", "bn1"), ...)`` (ResNet blocks and stem, the
  CAM++ front end); a ``shortcut`` that is ``Sequential(conv, batchnorm)`` is
  folded too. Other layers are left alone.
* **Channels-last layout** for models with 2-D convolutions on the CPU, where
  oneDNN's convolutions run faster on NHWC activations.

On a 2-core AMD EPYC (Zen 4) this makes ResNet34 embedding extraction about
15% faster (``python -m benchmarks.extract``). Training never sees
these rewrites: they act on a copy of the model.
"""

import copy
import logging
from typing import Tuple

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

logger = logging.getLogger(__name__)

_CONVS = (nn.Conv1d, nn.Conv2d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    return (isinstance(conv, _CONVS) and isinstance(norm, _NORMS) and norm.track_running_stats
            and norm.running_mean is not None and conv.out_channels == norm.num_features)


def _plan(model: nn.Module):
    """``(module, conv_name, norm_name)`` for every declared pair, and the foldable shortcuts."""
    pairs, shortcuts = [], []
    for module in model.modules():
        for conv_name, norm_name in getattr(type(module), "conv_bn_pairs", ()):
            conv, norm = getattr(module, conv_name, None), getattr(module, norm_name, None)
            if conv is not None and norm is not None and _foldable(conv, norm):
                pairs.append((module, conv_name, norm_name))
        shortcut = getattr(module, "shortcut", None)
        if isinstance(shortcut, nn.Sequential) and len(shortcut) == 2 and _foldable(shortcut[0], shortcut[1]):
            shortcuts.append(module)
    return pairs, shortcuts


def fold_batch_norm(model: nn.Module) -> Tuple[nn.Module, int]:
    """A copy of the eval-mode ``model`` with declared conv -> batch-norm pairs folded; and how many.

    The model itself is not modified; when nothing can be folded it is
    returned as it is (no copy).
    """
    if model.training:
        raise ValueError("batch-norm folding needs a model in eval mode")
    pairs, shortcuts = _plan(model)
    if not pairs and not shortcuts:
        return model, 0
    model = copy.deepcopy(model)
    pairs, shortcuts = _plan(model)
    for module, conv_name, norm_name in pairs:
        setattr(module, conv_name, fuse_conv_bn_eval(getattr(module, conv_name), getattr(module, norm_name)))
        setattr(module, norm_name, nn.Identity())
    for module in shortcuts:
        module.shortcut = nn.Sequential(fuse_conv_bn_eval(module.shortcut[0], module.shortcut[1]))
    return model, len(pairs) + len(shortcuts)


def has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def optimize_for_inference(model: nn.Module, device: torch.device) -> nn.Module:
    """The eval-mode ``model`` with batch norm folded, and in channels-last layout on the CPU.

    Returns the original object when no rewrite applies; never modifies it.
    """
    model = model.eval()
    optimized, folded = fold_batch_norm(model)
    channels_last = torch.device(device).type == "cpu" and has_conv2d(optimized)
    if channels_last:
        if optimized is model:
            optimized = copy.deepcopy(model)
        optimized = optimized.to(memory_format=torch.channels_last)
    if folded or channels_last:
        logger.debug("inference copy of %s: %d batch norm(s) folded%s", type(model).__name__, folded,
                     ", channels-last" if channels_last else "")
    return optimized
