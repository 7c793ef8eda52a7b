"""Frame masks and length arithmetic for padded batches.

Every speaker model in :mod:`wespk.models` accepts ``lengths`` (valid frames
per utterance) next to a zero-padded batch.  The models keep a padded batch
numerically equivalent to running each utterance alone by

* zeroing the padded frames of every tensor that feeds a convolution with a
  temporal context wider than one frame (so the convolution sees the same
  zeros at the utterance end as its own zero padding would give), and
* computing every statistic over time (pooling, SE means, CAM++ context)
  over the valid frames only.

The helpers here turn lengths into broadcastable masks and follow lengths
through strided convolutions.  Time is always the last tensor axis.
"""

from typing import Optional

import torch


def frame_mask(lengths: Optional[torch.Tensor], num_frames: int,
               like: torch.Tensor) -> Optional[torch.Tensor]:
    """Return a 0/1 mask of valid frames that broadcasts against ``like``.

    Args:
        lengths: LongTensor [B] of valid frames, or None.
        num_frames: size of the time axis (the last axis of ``like``).
        like: tensor whose rank and dtype the mask should follow, e.g.
            [B, C, T] or [B, C, F, T].

    Returns:
        None when ``lengths`` is None, else a tensor [B, 1, ..., 1, T] with
        ``like.dim()`` axes and ``like.dtype``.
    """
    if lengths is None:
        return None
    frames = torch.arange(num_frames, device=lengths.device)
    mask = (frames.unsqueeze(0) < lengths.unsqueeze(1)).to(like.dtype)
    shape = [mask.shape[0]] + [1] * (like.dim() - 2) + [num_frames]
    return mask.view(shape).to(like.device)


def conv_output_lengths(lengths: Optional[torch.Tensor],
                        kernel_size: int,
                        stride: int = 1,
                        padding: int = 0,
                        dilation: int = 1) -> Optional[torch.Tensor]:
    """Map valid lengths through a convolution along time.

    Uses the same formula as the output size of ``torch.nn.Conv1d``:
    ``floor((L + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1``.
    Returns None when ``lengths`` is None.
    """
    if lengths is None:
        return None
    span = dilation * (kernel_size - 1)
    return torch.div(lengths + 2 * padding - span - 1,
                     stride,
                     rounding_mode='floor') + 1


def apply_mask(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Zero the padded frames of ``x`` (identity when ``mask`` is None).

    The mask is cast to ``x.dtype`` so reduced-precision activations (e.g.
    under autocast) stay in their dtype.
    """
    if mask is None:
        return x
    return x * mask.to(x.dtype)
