"""Parameter and FLOP counts of speaker models.

FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode`,
which counts the matrix products and convolutions of a forward pass at two
FLOPs per multiply-add (so GFLOPs = 2 x the GMACs that ``thop``-style
counters print).  Element-wise work (BN, activations, pooling) is not
counted; it is a few percent of the total for these models.

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
    with torch.no_grad(), counter:
        counted(x)
    total = counter.get_total_flops()
    logger.debug('%s: %d FLOPs for %d x %d x %d input',
                 type(model).__name__, total, batch_size, num_frames, feat_dim)
    return total
