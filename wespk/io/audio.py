"""Audio reading and resampling: the one home of both.

An :class:`AudioRef` says where an utterance's audio lives: a file, a Kaldi
``wav.scp`` pipe command (a value ending in ``|``), or a member of a tar shard,
optionally cut to a segment (``start``/``end`` in seconds). :func:`load_audio`
decodes a file path or an :class:`AudioRef`; :func:`probe_audio` reads a
header (sample rate and length, no decoding) and :func:`read_audio_span`
decodes a span. For plain files and members of uncompressed tar shards only
the requested frames are decoded (soundfile seeks in WAV and FLAC); pipe
commands are run and decoded whole.

A command is run only when it comes from an :class:`AudioRef` (what a
``wav.scp`` or a list says, see :func:`ref_from_wav_scp_value`); a plain string
given to :func:`load_audio` is always a file name, never a command.

:func:`resample` converts sample rates by polyphase filtering; the
anti-aliasing filter is scipy's default for ``resample_poly`` (a
Kaiser-windowed sinc, beta 5, 10 zero crossings per side). Designing it takes
longer than filtering a 2 s chunk, so :class:`Resampler` keeps the filters it
has designed and gives output identical to :func:`resample`.
"""

import io
import logging
import os
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np
import soundfile

logger = logging.getLogger(__name__)


class AudioError(RuntimeError):
    """Audio that cannot be used; the message names the source and the problem."""


def _run_pipe(command: str) -> bytes:
    """Stdout of a ``wav.scp`` command (given without its trailing ``|``)."""
    proc = subprocess.run(command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise AudioError(f"command {command!r} failed ({proc.returncode}): "
                         f"{proc.stderr.decode(errors='replace').strip()[:300]}")
    return proc.stdout


@dataclass(frozen=True)
class AudioRef:
    """Where the audio of one utterance is.

    ``path`` is a file, a ``wav.scp`` command ending in ``|`` (run when the
    audio is read), or a tar shard. For a shard member
    ``member_offset``/``member_size`` locate its bytes in an uncompressed tar,
    or ``member_bytes`` holds them (compressed shards). ``start``/``end``
    (seconds, ``0 <= start < end``) cut a segment out of a longer recording;
    None means the recording's start / end.
    """

    path: str
    member_offset: int = -1
    member_size: int = 0
    member_bytes: Optional[bytes] = None
    start: Optional[float] = None
    end: Optional[float] = None

    def describe(self) -> str:
        """A readable name for messages: the file (and member / segment)."""
        where = self.path
        if self.member_offset >= 0 or self.member_bytes is not None:
            where += f"[member at byte {self.member_offset}]"
        if self.start is not None or self.end is not None:
            where += f" [{self.start or 0.0:.3f}, {'end' if self.end is None else f'{self.end:.3f}'}] s"
        return where

    @property
    def is_pipe(self) -> bool:
        """Whether ``path`` is a command whose output is the audio."""
        return self.path.rstrip().endswith("|")


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an utterance (after applying the segment, if any)."""

    sample_rate: int
    num_samples: int
    channels: int

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate


class FileSlice(io.RawIOBase):
    """A read-only, seekable view of ``size`` bytes at ``offset`` of an open file."""

    READ_AHEAD = 1 << 16

    def __init__(self, fileobj, offset: int, size: int):
        super().__init__()
        self._file = fileobj
        self._offset = offset
        self._size = size
        self._pos = 0
        self._block = b""
        self._block_start = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            new = pos
        elif whence == io.SEEK_CUR:
            new = self._pos + pos
        elif whence == io.SEEK_END:
            new = self._size + pos
        else:
            raise ValueError(f"invalid whence {whence}")
        self._pos = min(max(new, 0), self._size)
        return self._pos

    def readinto(self, buffer) -> int:
        # libsndfile asks for a few kB at a time; serve those from a block
        # read ahead, so that a chunk costs a few reads rather than dozens.
        view = memoryview(buffer).cast("B")
        count = min(len(view), self._size - self._pos)
        if count <= 0:
            return 0
        start = self._pos - self._block_start
        if not (0 <= start and start + count <= len(self._block)):
            wanted = min(max(count, self.READ_AHEAD), self._size - self._pos)
            self._file.seek(self._offset + self._pos)
            self._block = self._file.read(wanted)
            self._block_start = self._pos
            start = 0
            count = min(count, len(self._block))
        view[:count] = self._block[start:start + count]
        self._pos += count
        return count


@dataclass(frozen=True)
class PcmLayout:
    """Where the samples of an uncompressed WAV are and how to scale them."""

    data_offset: int
    num_frames: int
    channels: int
    sample_rate: int
    dtype: str
    scale: float

    @property
    def frame_bytes(self) -> int:
        return self.channels * np.dtype(self.dtype).itemsize


#: (format tag, bits per sample) -> (numpy dtype, divisor), as libsndfile scales them.
_PCM_TYPES = {(1, 16): ("<i2", 32768.0), (1, 32): ("<i4", 2147483648.0), (3, 32): ("<f4", 1.0)}


def parse_wav_header(head: bytes, total_size: int) -> Optional[PcmLayout]:
    """The sample layout of a WAV file from its first bytes, or None when the
    file is not a 16/32-bit PCM or 32-bit float WAV (or its header is longer
    than ``head``); callers then decode with soundfile."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        chunk, size = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "little")
        if chunk == b"fmt ":
            if pos + 8 + 16 > len(head):
                return None
            tag, channels, rate = (int.from_bytes(head[pos + 8:pos + 10], "little"),
                                   int.from_bytes(head[pos + 10:pos + 12], "little"),
                                   int.from_bytes(head[pos + 12:pos + 16], "little"))
            bits = int.from_bytes(head[pos + 22:pos + 24], "little")
            if tag == 0xFFFE and size >= 40 and pos + 8 + 26 <= len(head):
                tag = int.from_bytes(head[pos + 32:pos + 34], "little")  # extensible: sub-format
            fmt = (tag, bits, channels, rate)
        elif chunk == b"data":
            if fmt is None or (fmt[0], fmt[1]) not in _PCM_TYPES or fmt[2] < 1 or fmt[3] < 1:
                return None
            dtype, scale = _PCM_TYPES[(fmt[0], fmt[1])]
            data_offset = pos + 8
            data_size = min(size, total_size - data_offset)
            frame_bytes = fmt[2] * np.dtype(dtype).itemsize
            return PcmLayout(data_offset, max(data_size, 0) // frame_bytes, fmt[2], fmt[3], dtype, scale)
        pos += 8 + size + (size & 1)
    return None


def _member_layout(fileobj, ref: AudioRef) -> Optional[PcmLayout]:
    fileobj.seek(ref.member_offset)
    return parse_wav_header(fileobj.read(min(ref.member_size, 4096)), ref.member_size)


def _read_pcm(fileobj, ref: AudioRef, layout: PcmLayout, begin: int, stop: int) -> np.ndarray:
    """Frames ``[begin, stop)`` of a WAV member as float32 mono (channels averaged)."""
    fileobj.seek(ref.member_offset + layout.data_offset + begin * layout.frame_bytes)
    raw = fileobj.read((stop - begin) * layout.frame_bytes)
    frames = len(raw) // layout.frame_bytes
    data = np.frombuffer(raw[:frames * layout.frame_bytes], dtype=layout.dtype)
    samples = data.astype(np.float32)
    if layout.scale != 1.0:
        samples *= np.float32(1.0 / layout.scale)
    if layout.channels > 1:
        samples = samples.reshape(frames, layout.channels).mean(axis=1)
    return samples


class _OpenedAudio:
    """Context manager yielding a ``soundfile.SoundFile`` for an :class:`AudioRef`."""

    def __init__(self, ref: AudioRef):
        self.ref = ref
        self._raw = None
        self._snd = None

    def __enter__(self) -> soundfile.SoundFile:
        ref = self.ref
        try:
            if ref.member_bytes is not None:
                self._snd = soundfile.SoundFile(io.BytesIO(ref.member_bytes))
            elif ref.member_offset >= 0:
                self._raw = open(ref.path, "rb", buffering=0)
                self._snd = soundfile.SoundFile(FileSlice(self._raw, ref.member_offset, ref.member_size))
            else:
                if not os.path.isfile(ref.path):
                    raise FileNotFoundError(ref.path)
                self._snd = soundfile.SoundFile(ref.path)
        except AudioError:
            self._close()
            raise
        except FileNotFoundError:
            self._close()
            raise AudioError(f"{ref.describe()}: file not found") from None
        except (RuntimeError, soundfile.LibsndfileError, OSError, ValueError, TypeError) as e:
            self._close()
            raise AudioError(f"{ref.describe()}: cannot open audio ({e})") from None
        return self._snd

    def _close(self):
        if self._snd is not None:
            self._snd.close()
            self._snd = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    def __exit__(self, *exc):
        self._close()
        return False


def _segment_bounds(ref: AudioRef, sample_rate: int, total: int) -> Tuple[int, int]:
    first = int(round(ref.start * sample_rate)) if ref.start else 0
    last = int(round(ref.end * sample_rate)) if ref.end is not None else total
    return min(first, total), min(last, total)


def probe_audio(ref: AudioRef) -> AudioInfo:
    """Sample rate and length of ``ref`` from its header (segments applied).

    Pipe commands are run and decoded (a pipe has no header to peek at).
    Raises :class:`AudioError` naming the source when the audio cannot be
    opened or holds no samples.
    """
    if ref.is_pipe:
        samples, rate = _decode_pipe(ref)
        return AudioInfo(sample_rate=rate, num_samples=len(samples), channels=1)
    layout = _wav_member_layout(ref)
    if layout is not None:
        rate, total, channels = layout.sample_rate, layout.num_frames, layout.channels
    else:
        with _OpenedAudio(ref) as snd:
            rate, total, channels = snd.samplerate, snd.frames, snd.channels
    first, last = _segment_bounds(ref, rate, total)
    if last <= first:
        span = "" if ref.start is None and ref.end is None else f" in the segment (file has {total / rate:.3f} s)"
        raise AudioError(f"{ref.describe()}: no samples{span}")
    return AudioInfo(sample_rate=rate, num_samples=last - first, channels=channels)


def read_audio_span(ref: AudioRef, offset: int = 0,
                    num_samples: Optional[int] = None) -> Tuple[np.ndarray, int]:
    """Decode ``num_samples`` (default: all) from ``offset`` within the utterance.

    Offsets count samples from the start of the segment (or file). Channels
    are averaged. Returns ``(float32 samples in [-1, 1], sample_rate)``.
    Raises :class:`AudioError` naming the source for unreadable, empty or
    non-finite audio.
    """
    def span(rate: int, available: int) -> Tuple[int, Optional[int]]:
        return offset, num_samples

    return read_audio_window(ref, span)


def read_audio_window(ref: AudioRef,
                      choose: Callable[[int, int], Tuple[int, Optional[int]]]) -> Tuple[np.ndarray, int]:
    """Open ``ref`` once, let ``choose(sample_rate, num_samples)`` pick
    ``(offset, count)`` from the header, and decode that span (as
    :func:`read_audio_span`). Saves a second open when the span depends on
    the length (random noise spans). WAV members of tar shards are read
    directly (one read of the span's bytes); other audio through soundfile.
    """
    if ref.is_pipe:
        samples, rate = _decode_pipe(ref)
        begin, stop = _window(ref, choose, rate, 0, len(samples))
        return samples[begin:stop], rate
    if ref.member_offset >= 0 and ref.member_bytes is None:
        try:
            with open(ref.path, "rb") as f:
                layout = _member_layout(f, ref)
                if layout is not None:
                    first, last = _segment_bounds(ref, layout.sample_rate, layout.num_frames)
                    begin, stop = _window(ref, choose, layout.sample_rate, first, last)
                    samples = _read_pcm(f, ref, layout, begin, stop)
                    return _checked(ref, samples), layout.sample_rate
        except OSError as e:
            raise AudioError(f"{ref.describe()}: cannot read audio ({e})") from None
    with _OpenedAudio(ref) as snd:
        rate, total = snd.samplerate, snd.frames
        first, last = _segment_bounds(ref, rate, total)
        begin, stop = _window(ref, choose, rate, first, last)
        try:
            if begin > 0:
                snd.seek(begin)
            data = snd.read(frames=stop - begin, dtype="float32", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError, OSError) as e:
            raise AudioError(f"{ref.describe()}: cannot decode audio ({e})") from None
    return _checked(ref, data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)), rate


def _window(ref: AudioRef, choose: Callable[[int, int], Tuple[int, Optional[int]]], rate: int,
            first: int, last: int) -> Tuple[int, int]:
    """Absolute ``[begin, stop)`` frames of the span ``choose`` picks in ``[first, last)``."""
    if last <= first:
        raise AudioError(f"{ref.describe()}: no samples")
    offset, count = choose(rate, last - first)
    begin = first + max(offset, 0)
    stop = last if count is None else min(last, begin + count)
    if stop <= begin:
        raise AudioError(f"{ref.describe()}: no samples at offset {offset}")
    return begin, stop


def _checked(ref: AudioRef, samples: np.ndarray) -> np.ndarray:
    if len(samples) == 0:
        raise AudioError(f"{ref.describe()}: no samples decoded")
    if not np.isfinite(samples).all():
        raise AudioError(f"{ref.describe()}: audio contains NaN or Inf samples")
    return np.ascontiguousarray(samples, dtype=np.float32)


def _wav_member_layout(ref: AudioRef) -> Optional[PcmLayout]:
    """The layout of a WAV member of an uncompressed shard (None otherwise)."""
    if ref.member_offset < 0 or ref.member_bytes is not None:
        return None
    try:
        with open(ref.path, "rb") as f:
            return _member_layout(f, ref)
    except FileNotFoundError:
        raise AudioError(f"{ref.describe()}: file not found") from None
    except OSError as e:
        raise AudioError(f"{ref.describe()}: cannot read audio ({e})") from None


def read_audio_channel(ref: AudioRef, channel: int = 0) -> Tuple[np.ndarray, int]:
    """Decode one channel of the whole utterance (for RIRs: averaging the
    channels of a multi-microphone RIR would smear its direct path)."""
    if ref.is_pipe:
        data, rate = _decode_pipe(ref, mono=False)
        return np.ascontiguousarray(data[:, min(channel, data.shape[1] - 1)]), rate
    with _OpenedAudio(ref) as snd:
        rate, total = snd.samplerate, snd.frames
        first, last = _segment_bounds(ref, rate, total)
        try:
            if first > 0:
                snd.seek(first)
            data = snd.read(frames=max(last - first, 0), dtype="float32", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError, OSError) as e:
            raise AudioError(f"{ref.describe()}: cannot decode audio ({e})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{ref.describe()}: no samples")
    samples = data[:, min(channel, data.shape[1] - 1)]
    if not np.isfinite(samples).all():
        raise AudioError(f"{ref.describe()}: audio contains NaN or Inf samples")
    return np.ascontiguousarray(samples), rate


def _decode(handle, name: str, start: Optional[float], end: Optional[float],
            mono: bool, dtype: str = "float32") -> Tuple[np.ndarray, int]:
    """Decode ``[start, end)`` seconds of a file or buffer (all of it by default)."""
    try:
        with soundfile.SoundFile(handle) as snd:
            sr = snd.samplerate
            first = int(round(start * sr)) if start else 0
            last = int(round(end * sr)) if end is not None else snd.frames
            if first > 0:
                snd.seek(min(first, snd.frames))
            data = snd.read(frames=max(0, min(last, snd.frames) - first), dtype=dtype, always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, OSError, ValueError, TypeError) as e:
        raise AudioError(f"{name}: cannot decode audio ({e})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{name}: no samples" + (f" in [{start}, {end}] s" if start or end else ""))
    if dtype == "float32" and not np.isfinite(data).all():
        raise AudioError(f"{name}: audio contains NaN or Inf samples")
    if mono:
        data = data.mean(axis=1, dtype=np.float32).astype(dtype) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(data), sr


def _decode_pipe(ref: AudioRef, mono: bool = True, dtype: str = "float32") -> Tuple[np.ndarray, int]:
    command = ref.path.rstrip()[:-1].strip()
    return _decode(io.BytesIO(_run_pipe(command)), ref.describe(), ref.start, ref.end, mono, dtype)


def load_audio(source: Union[str, os.PathLike, AudioRef], start: Optional[float] = None,
               end: Optional[float] = None, mono: bool = True,
               dtype: str = "float32") -> Tuple[np.ndarray, int]:
    """Read audio as float32 in [-1, 1].

    ``source`` is a file path or an :class:`AudioRef` (a file, a ``wav.scp``
    command ending in ``|``, or a shard member, with its segment). A path is
    always read as a file: commands run only from an :class:`AudioRef`.
    ``start``/``end`` (seconds) read only that span of a path (an
    :class:`AudioRef` carries its own); only the needed frames are decoded.
    Returns ``(samples, sample_rate)`` with samples shaped ``[n]`` when
    ``mono`` (channels averaged) else ``[n, channels]``. Raises
    :class:`AudioError` naming the source for missing, unreadable or empty
    audio and for non-finite samples. ``dtype="int16"`` gives the 16-bit
    integer samples instead (for copying PCM exactly).
    """
    if isinstance(source, AudioRef):
        if start is not None or end is not None:
            raise ValueError("an AudioRef carries its own segment; do not pass start/end with it")
        if source.is_pipe:
            return _decode_pipe(source, mono, dtype)
        if source.member_offset >= 0 or source.member_bytes is not None:
            with _OpenedAudio(source) as snd:
                rate, total = snd.samplerate, snd.frames
                first, last = _segment_bounds(source, rate, total)
                if first > 0:
                    snd.seek(first)
                data = snd.read(frames=max(last - first, 0), dtype=dtype, always_2d=True)
            if data.shape[0] == 0:
                raise AudioError(f"{source.describe()}: no samples")
            if dtype == "float32" and not np.isfinite(data).all():
                raise AudioError(f"{source.describe()}: audio contains NaN or Inf samples")
            if mono:
                data = data.mean(axis=1, dtype=np.float32).astype(dtype) if data.shape[1] > 1 else data[:, 0]
            return np.ascontiguousarray(data), rate
        start, end, source = source.start, source.end, source.path
    source = os.fspath(source)
    if not os.path.isfile(source):
        hint = " (a command runs only from a wav.scp or list entry)" if source.rstrip().endswith("|") else ""
        raise AudioError(f"{source}: file not found{hint}")
    return _decode(source, source, start, end, mono, dtype)


def audio_duration(source: Union[str, os.PathLike, AudioRef]) -> float:
    """Duration in seconds, from the header when possible (segments applied)."""
    if isinstance(source, AudioRef):
        return probe_audio(source).duration
    source = os.fspath(source)
    if not os.path.isfile(source):
        raise AudioError(f"{source}: file not found")
    try:
        info = soundfile.info(source)
    except (RuntimeError, soundfile.LibsndfileError) as e:
        raise AudioError(f"{source}: cannot read audio header ({e})") from None
    return info.frames / info.samplerate


def ref_from_wav_scp_value(value: str, start: Optional[float] = None,
                           end: Optional[float] = None, base_dir: Optional[str] = None) -> AudioRef:
    """An :class:`AudioRef` for a ``wav.scp`` value (path or pipe command).

    Relative paths are resolved against ``base_dir`` when given.
    """
    value = value.strip()
    if not value.endswith("|") and base_dir and not os.path.isabs(value):
        value = os.path.join(base_dir, value)
    return AudioRef(path=value, start=start, end=end)


# ------------------------------------------------------------ resampling ---
def resample_ratio(from_rate: float, to_rate: float, max_denominator: int = 1000) -> Tuple[int, int]:
    """``(up, down)`` with ``up / down == to_rate / from_rate`` (in lowest terms;
    non-integer rates are approximated with denominators up to ``max_denominator``)."""
    if float(from_rate).is_integer() and float(to_rate).is_integer():
        ratio = Fraction(int(to_rate), int(from_rate))
    else:
        ratio = Fraction(to_rate / from_rate).limit_denominator(max_denominator)
    return ratio.numerator, ratio.denominator


def design_filter(up: int, down: int) -> np.ndarray:
    """The low-pass FIR filter ``resample_poly`` designs for ``(up, down)``."""
    from scipy.signal import firwin
    max_rate = max(up, down)
    return firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0)).astype(np.float32)


def apply_ratio(waveform, up: int, down: int, taps: np.ndarray) -> np.ndarray:
    """Filter ``waveform`` (1-D; numpy or CPU tensor) by ``up/down`` with ``taps``."""
    from scipy.signal import resample_poly
    return resample_poly(np.asarray(waveform, dtype=np.float32), up, down,
                         window=taps).astype(np.float32, copy=False)


def resample(samples, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a 1-D float waveform from ``from_rate`` to ``to_rate`` Hz.

    Output length is ``ceil(len * to_rate / from_rate)``, as float32 numpy
    (a CPU tensor input is read as an array; equal rates return the input).
    """
    if from_rate == to_rate:
        return samples
    up, down = resample_ratio(from_rate, to_rate)
    return apply_ratio(samples, up, down, design_filter(up, down))


class Resampler:
    """:func:`resample` (and any ``up/down`` ratio change) with the filters kept per ratio."""

    def __init__(self):
        self._filters: Dict[Tuple[int, int], np.ndarray] = {}

    def taps(self, up: int, down: int) -> np.ndarray:
        """The filter for ``(up, down)``, designed on first use."""
        taps = self._filters.get((up, down))
        if taps is None:
            taps = self._filters[(up, down)] = design_filter(up, down)
        return taps

    def apply_ratio(self, waveform, up: int, down: int) -> np.ndarray:
        """:func:`apply_ratio` with this resampler's filter for ``(up, down)``."""
        return apply_ratio(waveform, up, down, self.taps(up, down))

    def resample(self, samples, from_rate: int, to_rate: int) -> np.ndarray:
        """Same as :func:`resample`."""
        if from_rate == to_rate:
            return samples
        up, down = resample_ratio(from_rate, to_rate)
        return self.apply_ratio(samples, up, down)
