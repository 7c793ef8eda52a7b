"""Kaldi log-mel filterbank features, as WeSpeaker computes them.

WeSpeaker calls ``torchaudio.compliance.kaldi.fbank`` on the waveform scaled to
16-bit range with ``window_type='hamming'`` and ``use_energy=False``, leaving
every other option at Kaldi's default (pre-emphasis 0.97, DC removal,
``snip_edges=True``, mel bins between 20 Hz and Nyquist, power spectrum, log).
The same options are set here on one of two C++ backends:

* ``kaldifeat`` (preferred; supports batches of waveforms in one call);
* ``knf`` (kaldi-native-fbank; wheels on PyPI, the fallback).

Both give the same features (tests check that they agree within 1e-3).

Dither is not delegated to the backends: each backend draws its noise from its
own global generator, which would make training depend on process scheduling.
Instead :func:`compute_fbank` adds ``dither * N(0, 1)`` to the 16-bit-scaled
waveform before framing: a window of a fixed Gaussian sequence at an offset
drawn from a caller-supplied ``numpy.random.Generator``, so that dither is
reproducible and cheap. (Kaldi draws fresh noise for each frame; here
overlapping frames share the noise of their common samples, and utterances
share windows of one long sequence; each frame's noise has the same
statistics.)
"""

import contextlib
import importlib.util
import logging
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: Backend names accepted by ``backend=``; ``"auto"`` picks the first importable one.
FBANK_BACKENDS = ("kaldifeat", "knf")

#: Scale from float samples in [-1, 1] to the 16-bit range Kaldi works in.
INT16_SCALE = 32768.0

#: Frames per kaldifeat call when computing a batch (measured fastest on CPU).
BATCH_FRAMES_PER_CALL = 400

#: Dither noise is read from this fixed Gaussian sequence (4 MB, 65 s at 16 kHz).
DITHER_NOISE_LENGTH = 1 << 20
DITHER_NOISE_SEED = 20240601

ArrayLike = Union[torch.Tensor, np.ndarray]


class FbankBackendError(RuntimeError):
    """The requested fbank backend is not installed or not known."""


def available_fbank_backends() -> List[str]:
    """Names of the fbank backends that can be imported here, preferred first."""
    found = []
    if importlib.util.find_spec("kaldifeat") is not None:
        found.append("kaldifeat")
    if importlib.util.find_spec("kaldi_native_fbank") is not None:
        found.append("knf")
    return found


def resolve_fbank_backend(backend: str = "auto") -> str:
    """Map ``"auto"`` to the preferred installed backend; check explicit names."""
    available = available_fbank_backends()
    if backend == "auto":
        if not available:
            raise FbankBackendError("no fbank backend installed: install kaldifeat (tools/install.sh) "
                                    "or kaldi-native-fbank (pip install kaldi-native-fbank)")
        return available[0]
    if backend not in FBANK_BACKENDS:
        raise FbankBackendError(f"unknown fbank backend {backend!r}; choose from "
                                f"{', '.join(FBANK_BACKENDS)} or 'auto'")
    if backend not in available:
        raise FbankBackendError(f"fbank backend {backend!r} is not installed "
                                f"(installed: {', '.join(available) or 'none'})")
    return backend


def num_frames(num_samples: int, sample_rate: int, frame_length: float = 25.0,
               frame_shift: float = 10.0) -> int:
    """Frames Kaldi makes from ``num_samples`` with ``snip_edges=True``."""
    window = int(sample_rate * frame_length / 1000)
    shift = int(sample_rate * frame_shift / 1000)
    if num_samples < window:
        return 0
    return 1 + (num_samples - window) // shift


def num_samples_for_frames(frames: int, sample_rate: int, frame_length: float = 25.0,
                           frame_shift: float = 10.0) -> int:
    """Fewest samples that give ``frames`` frames (WeSpeaker's chunk length)."""
    window = int(sample_rate * frame_length / 1000)
    shift = int(sample_rate * frame_shift / 1000)
    return (frames - 1) * shift + window


@contextlib.contextmanager
def torch_threads(count: Optional[int]):
    """Run the block with ``count`` intra-op threads (None: leave as is)."""
    previous = torch.get_num_threads()
    if count is None or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class FbankExtractor:
    """A reusable fbank computer for one set of options.

    Building the backend objects (mel banks, windows) costs a fraction of a
    millisecond; the online pipeline keeps one extractor per process and
    calls it for every utterance. :func:`compute_fbank` is the one-shot form.

    ``num_threads`` (default 1) is the number of torch intra-op threads the
    kaldifeat backend runs with; the previous setting is restored after each
    call. One utterance is too small to gain from intra-op parallelism, and on
    a busy 2-core machine two threads made kaldifeat about 5x slower.
    """

    def __init__(self, sample_rate: int = 16000, num_mel_bins: int = 80,
                 frame_length: float = 25.0, frame_shift: float = 10.0,
                 backend: str = "auto", num_threads: Optional[int] = 1):
        self.num_threads = num_threads
        self.sample_rate = int(sample_rate)
        self.num_mel_bins = int(num_mel_bins)
        self.frame_length = float(frame_length)
        self.frame_shift = float(frame_shift)
        self.backend = resolve_fbank_backend(backend)
        self._kaldifeat_computer = None
        self._knf_options = None
        self._noise: Optional[np.ndarray] = None

    def __getstate__(self):
        # Backend objects are C++ handles; rebuild them lazily after pickling
        # (DataLoader workers receive a pickled copy of the dataset).
        state = self.__dict__.copy()
        state["_kaldifeat_computer"] = None
        state["_knf_options"] = None
        state["_noise"] = None
        return state

    # -- backend objects -------------------------------------------------
    def _kaldifeat(self):
        if self._kaldifeat_computer is None:
            import kaldifeat
            opts = kaldifeat.FbankOptions()
            opts.frame_opts.samp_freq = float(self.sample_rate)
            opts.frame_opts.frame_length_ms = self.frame_length
            opts.frame_opts.frame_shift_ms = self.frame_shift
            opts.frame_opts.dither = 0.0
            opts.frame_opts.window_type = "hamming"
            opts.frame_opts.snip_edges = True
            opts.mel_opts.num_bins = self.num_mel_bins
            opts.use_energy = False
            opts.energy_floor = 0.0
            self._kaldifeat_computer = kaldifeat.Fbank(opts)
        return self._kaldifeat_computer

    def _knf(self):
        if self._knf_options is None:
            import kaldi_native_fbank as knf
            opts = knf.FbankOptions()
            opts.frame_opts.samp_freq = float(self.sample_rate)
            opts.frame_opts.frame_length_ms = self.frame_length
            opts.frame_opts.frame_shift_ms = self.frame_shift
            opts.frame_opts.dither = 0.0
            opts.frame_opts.window_type = "hamming"
            opts.frame_opts.snip_edges = True
            opts.mel_opts.num_bins = self.num_mel_bins
            opts.use_energy = False
            opts.energy_floor = 0.0
            self._knf_options = opts
        return self._knf_options

    # -- computing -------------------------------------------------------
    def _prepare(self, waveform: ArrayLike, dither: float,
                 generator: Optional[np.random.Generator]) -> torch.Tensor:
        if isinstance(waveform, torch.Tensor):
            waveform = waveform.detach().cpu().numpy()
        waveform = np.asarray(waveform)
        if waveform.ndim != 1:
            raise ValueError(f"fbank expects a 1-D waveform, got shape {waveform.shape}")
        scaled = waveform.astype(np.float32) * np.float32(INT16_SCALE)
        if dither > 0.0:
            rng = generator if generator is not None else np.random.default_rng()
            scaled += np.float32(dither) * self._dither_noise(len(scaled), rng)
        return torch.from_numpy(scaled)

    def _dither_noise(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """``length`` values of a fixed N(0, 1) sequence from an offset drawn
        from ``rng``: drawing fresh Gaussian noise cost a tenth of the whole
        training pipeline, and dither only needs noise that is independent of
        the speech (the sequence is the same in every process)."""
        if self._noise is None:
            self._noise = np.random.default_rng(DITHER_NOISE_SEED).standard_normal(
                DITHER_NOISE_LENGTH, dtype=np.float32)
        offset = int(rng.integers(0, DITHER_NOISE_LENGTH))
        if offset + length <= DITHER_NOISE_LENGTH:
            return self._noise[offset:offset + length]
        return np.take(self._noise, np.arange(offset, offset + length) % DITHER_NOISE_LENGTH)

    def _empty(self) -> torch.Tensor:
        return torch.zeros(0, self.num_mel_bins, dtype=torch.float32)

    def _window_samples(self) -> int:
        return int(self.sample_rate * self.frame_length / 1000)

    def _compute_knf(self, scaled: torch.Tensor) -> torch.Tensor:
        import kaldi_native_fbank as knf
        computer = knf.OnlineFbank(self._knf())
        computer.accept_waveform(float(self.sample_rate), scaled.numpy().tolist())
        computer.input_finished()
        count = computer.num_frames_ready
        if count == 0:
            return self._empty()
        frames = np.stack([computer.get_frame(i) for i in range(count)]).astype(np.float32)
        return torch.from_numpy(frames)

    def __call__(self, waveform: ArrayLike, dither: float = 0.0,
                 generator: Optional[np.random.Generator] = None) -> torch.Tensor:
        """Features ``[frames, num_mel_bins]`` of a 1-D float waveform in [-1, 1]."""
        scaled = self._prepare(waveform, dither, generator)
        if scaled.shape[0] < self._window_samples():
            return self._empty()
        if self.backend == "kaldifeat":
            with torch.no_grad(), torch_threads(self.num_threads):
                return self._kaldifeat()(scaled)
        return self._compute_knf(scaled)

    def batch(self, waveforms: Sequence[ArrayLike], dither: float = 0.0,
              generator: Optional[np.random.Generator] = None) -> List[torch.Tensor]:
        """Features of several waveforms; one kaldifeat call for all of them."""
        scaled = [self._prepare(w, dither, generator) for w in waveforms]
        if self.backend != "kaldifeat":
            return [self._compute_knf(s) if s.shape[0] >= self._window_samples() else self._empty()
                    for s in scaled]
        long_enough = [i for i, s in enumerate(scaled) if s.shape[0] >= self._window_samples()]
        out = [self._empty() for _ in scaled]
        if long_enough:
            with torch.no_grad(), torch_threads(self.num_threads):
                # kaldifeat stacks the frames of all waveforms; computing them
                # in blocks that stay in cache is ~3x faster than one block.
                feats = self._kaldifeat()([scaled[i] for i in long_enough],
                                          chunk_size=BATCH_FRAMES_PER_CALL)
            for i, f in zip(long_enough, feats):
                out[i] = f
        return out


def compute_fbank(waveform: ArrayLike, sample_rate: int, num_mel_bins: int = 80,
                  frame_length: float = 25.0, frame_shift: float = 10.0,
                  dither: float = 0.0, backend: str = "auto",
                  generator: Optional[np.random.Generator] = None) -> torch.Tensor:
    """Kaldi fbank ``[frames, num_mel_bins]`` of a 1-D waveform in [-1, 1].

    The waveform is scaled by 32768 as WeSpeaker and Kaldi do; options match
    WeSpeaker's (hamming window, no energy, ``snip_edges``). ``dither`` (in
    16-bit units; 0 for evaluation) draws from ``generator`` when given.
    A waveform shorter than one frame gives a ``[0, num_mel_bins]`` tensor.
    """
    extractor = FbankExtractor(sample_rate, num_mel_bins, frame_length, frame_shift, backend)
    return extractor(waveform, dither=dither, generator=generator)


def compute_fbank_batch(waveforms: Sequence[ArrayLike], sample_rate: int, num_mel_bins: int = 80,
                        frame_length: float = 25.0, frame_shift: float = 10.0,
                        dither: float = 0.0, backend: str = "auto",
                        generator: Optional[np.random.Generator] = None) -> List[torch.Tensor]:
    """:func:`compute_fbank` for a list of waveforms (batched with kaldifeat)."""
    extractor = FbankExtractor(sample_rate, num_mel_bins, frame_length, frame_shift, backend)
    return extractor.batch(waveforms, dither=dither, generator=generator)


def apply_cmn(feats: torch.Tensor, norm_var: bool = False) -> torch.Tensor:
    """Subtract the mean over time (dim ``-2``); divide by the std when ``norm_var``.

    Works on ``[T, F]`` and on ``[B, T, F]`` (each utterance its own mean; for
    padded batches normalise before padding). Returns a new tensor.
    """
    if feats.shape[-2] == 0:
        return feats.clone()
    out = feats - feats.mean(dim=-2, keepdim=True)
    if norm_var:
        out = out / torch.sqrt(feats.var(dim=-2, unbiased=False, keepdim=True) + 1e-8)
    return out
