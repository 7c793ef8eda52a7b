"""GE2E LSTM speaker encoder (Wan et al., "Generalized End-to-End Loss for
Speaker Verification", ICASSP 2018).

A stack of LSTM layers reads a window of feature frames; the last layer's
final hidden state goes through a linear layer and a ReLU and is
L2-normalised. This is the structure of resemblyzer's ``VoiceEncoder``
(3 layers of 256 units, 256-dim embedding, 40 mel bands), so its
``pretrained.pt`` loads after renaming ``linear.*`` to ``embedding.*`` (see
:mod:`wespk.pretrained.resemblyzer`).

Training feeds fixed-length partial windows (``[B, partial_frames, F]``) and
gets one embedding per window. An utterance embedding is the L2-normalised
mean of the embeddings of partial windows slid over the utterance
(:meth:`GE2E_LSTM.partial_window_starts`), as in the paper and in
resemblyzer's ``embed_utterance``; windows running past the end of an
utterance are zero-padded.
"""

import logging
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

logger = logging.getLogger(__name__)


class GE2E_LSTM(nn.Module):
    """LSTM encoder, linear + ReLU projection, L2-normalised output.

    Args:
        feat_dim: input features per frame (40 mel bands for resemblyzer).
        hidden_dim: LSTM units per layer.
        embed_dim: embedding size.
        num_layers: LSTM layers.
        partial_frames: frames per partial window (160 = 1.6 s at 10 ms).
        partial_overlap: overlap of consecutive windows as a fraction of
            ``partial_frames`` (the paper's 50%); used when ``partial_rate``
            is not given. The step is ``round(partial_frames * (1 - overlap))``.
        partial_rate: windows per second of audio instead of an overlap
            (resemblyzer uses 1.3, a step of ``round(100 / 1.3) = 77`` frames).
        frames_per_second: frame rate of the features (100 for a 10 ms shift);
            only used with ``partial_rate``.
        min_coverage: the last window is kept only when at least this
            fraction of it lies inside the utterance (measured up to the
            utterance's last frame), unless it is the only window.
        trailing_frames: how many frames at the end of every input lie past
            the utterance's last frame centre. A centred STFT has a few frames
            there whose windows still overlap the end of the signal
            (``resemblyzer_mel`` front end: 2). They are not counted when
            windows are placed, but a window that reaches them reads them
            instead of zeros - exactly what resemblyzer gets by zero-padding
            the waveform before its spectrogram.

    ``forward(x, lengths=None)`` takes features ``[B, T, F]`` and valid
    lengths ``[B]``. In training mode with ``T <= partial_frames`` it returns
    the embedding of each sequence as a whole (``[B, D]``); otherwise (eval
    mode, or longer input) it returns utterance embeddings ``[B, D]``
    averaged over partial windows, each utterance windowed over its own
    length, so a padded batch gives the same embeddings as one utterance at a
    time.
    """

    def __init__(self, feat_dim: int = 40, hidden_dim: int = 256, embed_dim: int = 256,
                 num_layers: int = 3, partial_frames: int = 160, partial_overlap: float = 0.5,
                 partial_rate: Optional[float] = None, frames_per_second: float = 100.0,
                 min_coverage: float = 0.75, trailing_frames: int = 0):
        super().__init__()
        if trailing_frames < 0:
            raise ValueError(f"trailing_frames must be >= 0, got {trailing_frames}")
        if partial_frames < 1:
            raise ValueError(f"partial_frames must be positive, got {partial_frames}")
        if not 0 < min_coverage <= 1:
            raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
        if partial_rate is not None:
            if partial_rate <= 0:
                raise ValueError(f"partial_rate must be positive, got {partial_rate}")
            step = int(round(frames_per_second / partial_rate))
        else:
            if not 0 <= partial_overlap < 1:
                raise ValueError(f"partial_overlap must be in [0, 1), got {partial_overlap}")
            step = int(round(partial_frames * (1 - partial_overlap)))
        if not 0 < step <= partial_frames:
            raise ValueError(f"partial window step {step} frames must be in [1, partial_frames={partial_frames}] "
                             f"(check partial_rate / partial_overlap)")
        self.partial_frames = int(partial_frames)
        self.partial_step = step
        self.min_coverage = float(min_coverage)
        self.trailing_frames = int(trailing_frames)
        self.embed_dim = embed_dim
        self.lstm = nn.LSTM(feat_dim, hidden_dim, num_layers, batch_first=True)
        self.embedding = nn.Linear(hidden_dim, embed_dim)
        self.relu = nn.ReLU()

    def partial_window_starts(self, num_frames: int) -> List[int]:
        """First frame of each partial window over an utterance of ``num_frames`` frames.

        Windows start every ``partial_step`` frames, as long as the start is
        below ``num_frames - partial_frames + partial_step + 1`` (at least one
        window); the last one is dropped when less than ``min_coverage`` of
        it lies before the utterance's last frame and it is not the only one.

        With 10 ms frames computed as ``1 + samples // 160``, this is
        resemblyzer's ``compute_partial_slices(samples, rate, min_coverage)``
        (its coverage is measured in samples; the two agree exactly whenever
        ``min_coverage * partial_frames`` is a whole number, as 0.75 * 160 is).
        """
        if num_frames < 0:
            raise ValueError(f"num_frames must be >= 0, got {num_frames}")
        stop = max(1, num_frames - self.partial_frames + self.partial_step + 1)
        starts = list(range(0, stop, self.partial_step))
        coverage = (num_frames - 1 - starts[-1]) / self.partial_frames
        if len(starts) > 1 and coverage < self.min_coverage - 1e-9:
            starts.pop()
        return starts

    def embed_partials(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """L2-normalised embeddings ``[B, D]`` of sequences ``x`` ``[B, T, F]``.

        The embedding is read from the last layer's hidden state at each
        sequence's last valid frame (``lengths``; all ``T`` when omitted).
        """
        if lengths is not None and bool((lengths != x.shape[1]).any()):
            lengths_cpu = lengths.detach().to("cpu", torch.long).clamp(min=1)
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths_cpu, batch_first=True, enforce_sorted=False)
            _, (hidden, _) = self.lstm(packed)
        else:
            _, (hidden, _) = self.lstm(x)
        return F.normalize(self.relu(self.embedding(hidden[-1])), p=2, dim=1)

    def embed_utterances(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Utterance embeddings ``[B, D]``: normalised mean over partial windows.

        Windows are placed over the first ``length - trailing_frames``
        frames of each utterance; frames at or beyond ``length`` are treated
        as zeros, so the result does not depend on how the batch was padded.
        """
        batch, num_frames, feat_dim = x.shape
        if lengths is None:
            lengths_list = [num_frames] * batch
        else:
            lengths_list = [int(v) for v in lengths.tolist()]
            if any(v < 0 or v > num_frames for v in lengths_list):
                raise ValueError(f"lengths {lengths_list} must lie in [0, {num_frames}]")
        starts, owners = [], []
        for index, length in enumerate(lengths_list):
            utt_starts = self.partial_window_starts(max(0, length - self.trailing_frames))
            starts.extend(utt_starts)
            owners.extend([index] * len(utt_starts))
        span = max(num_frames, max(starts) + self.partial_frames)
        padded = x.new_zeros(batch, span, feat_dim)
        if lengths is None:
            padded[:, :num_frames] = x
        else:
            valid = torch.arange(num_frames, device=x.device)[None, :] < torch.as_tensor(
                lengths_list, device=x.device)[:, None]
            padded[:, :num_frames] = x * valid.unsqueeze(-1).to(x.dtype)
        owner_index = torch.as_tensor(owners, device=x.device)
        frame_index = torch.as_tensor(starts, device=x.device)[:, None] + torch.arange(
            self.partial_frames, device=x.device)[None, :]
        windows = padded[owner_index[:, None], frame_index]            # [W, partial_frames, F]
        partial = self.embed_partials(windows)
        sums = partial.new_zeros(batch, partial.shape[1]).index_add_(0, owner_index, partial)
        counts = torch.bincount(owner_index, minlength=batch).to(partial.dtype)
        return F.normalize(sums / counts[:, None], p=2, dim=1)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"expected features [B, T, F], got shape {tuple(x.shape)}")
        if self.training and x.shape[1] <= self.partial_frames:
            return self.embed_partials(x, lengths)
        return self.embed_utterances(x, lengths)
