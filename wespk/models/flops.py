"""Parameter and FLOP counts of speaker models.

FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode`,
which counts the matrix products and convolutions of a forward pass at two
FLOPs per multiply-add (so GFLOPs = 2 x the GMACs that ``thop``-style
counters print).  Element-wise work (BN, activations, pooling) is not
counted; it is a few percent of the total for these models.  Recurrent
layers (``nn.LSTM``, ``nn.GRU``), whose fused kernels the counter does not
see, are counted from their sizes: per time step and direction, the gate
products ``gates x hidden x (input + hidden)`` multiply-adds (4 gates for an
LSTM, 3 for a GRU) plus the projection of an LSTM with ``proj_size``.

By default the forward runs on the ``meta`` device: shapes only, no
arithmetic, so even ResNet293 is counted in about a second.
"""

import copy
import logging

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

logger = logging.getLogger(__name__)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def recurrent_flops(module: nn.RNNBase, steps: int) -> int:
    """FLOPs (2 per multiply-add) of the matrix products of ``module`` over ``steps`` time steps x batch."""
    gates = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}[module.mode]
    directions = 2 if module.bidirectional else 1
    hidden = module.hidden_size
    proj = getattr(module, "proj_size", 0) or 0
    out = proj or hidden
    macs = 0
    for layer in range(module.num_layers):
        in_size = module.input_size if layer == 0 else out * directions
        macs += gates * hidden * (in_size + out) + hidden * proj
    return 2 * macs * directions * steps


def _recurrent_steps(module: nn.RNNBase, inputs) -> int:
    x = inputs[0]
    if isinstance(x, nn.utils.rnn.PackedSequence):
        return int(x.data.shape[0])
    if x.dim() == 2:  # unbatched [T, F]
        return int(x.shape[0])
    return int(x.shape[0] * x.shape[1])


def count_flops(model: nn.Module,
                num_frames: int,
                feat_dim: int = 80,
                batch_size: int = 1,
                device: str = 'meta') -> int:
    """FLOPs of one eval-mode forward pass on fbank [batch, num_frames, feat_dim].

    Args:
        model: a speaker model taking [B, T, F]; it is not modified (a copy
            is moved to ``device``).
        num_frames: frames per utterance (100 per second of audio).
        feat_dim: fbank dimension.
        batch_size: utterances per forward.
        device: where to run the counting forward; ``'meta'`` computes
            nothing.  Use ``'cpu'`` for modules without meta kernels.

    Returns:
        Total FLOPs (multiply-adds count 2).
    """
    counted = copy.deepcopy(model).to(device).eval()
    x = torch.zeros(batch_size, num_frames, feat_dim, device=device)
    counter = FlopCounterMode(display=False)
    # a recurrent layer's own products are counted from its sizes; what the counter saw inside it
    # (nothing for the fused CPU/cuDNN kernels, every product for the generic one) is taken out
    recurrent, seen = [], []

    def before(module, inputs):
        recurrent.append(recurrent_flops(module, _recurrent_steps(module, inputs)))
        seen.append(-counter.get_total_flops())

    def after(module, inputs, output):
        seen[-1] += counter.get_total_flops()

    hooks = []
    for module in counted.modules():
        if isinstance(module, nn.RNNBase):
            hooks += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        with torch.no_grad(), counter:
            counted(x)
    finally:
        for hook in hooks:
            hook.remove()
    total = counter.get_total_flops() - sum(seen) + sum(recurrent)
    logger.debug('%s: %d FLOPs for %d x %d x %d input',
                 type(model).__name__, total, batch_size, num_frames, feat_dim)
    return total
