"""Tar shards: the one writer (used by ``tools/make_shard_list.py``) and the indexer.

A shard holds, for each utterance in order, ``<key>.spk`` (the speaker, UTF-8
text, no newline) then ``<key>.<suffix>`` (the audio). :func:`write_shard`
writes one atomically with fixed member metadata (mtime 0, mode 0644, PAX
format), so the same input gives the same bytes; :func:`write_shards` cuts
utterances into shards (in parallel processes) and
:func:`shard_audio_member` makes each audio member: a plain ``.wav`` or
``.flac`` file is copied byte for byte, anything else (a ``wav.scp`` command,
another format, a segment) is decoded and stored as 16-bit PCM WAV.

:func:`index_shard` reads a shard back without decoding: uncompressed shards
are indexed (member offsets and audio headers) so that only the audio a
sample needs is read; compressed shards are read into memory.
"""

import io
import logging
import multiprocessing
import os
import tarfile
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import soundfile

from wespk.data.records import Utterance
from wespk.io.audio import AudioError, AudioRef, load_audio, probe_audio
from wespk.io.files import atomic_output

logger = logging.getLogger(__name__)

#: Tar member suffixes taken as audio (what soundfile can decode).
AUDIO_SUFFIXES = frozenset({"wav", "flac", "ogg", "opus", "mp3"})
#: Audio files copied into shards as they are.
COPIED_SUFFIXES = ("wav", "flac")


class ShardWriteError(RuntimeError):
    """A shard that could not be written; the message names the utterance and its audio."""


def _split_member_name(name: str) -> Tuple[str, str]:
    base = os.path.basename(name)
    dot = base.rfind(".")
    if dot <= 0:
        return name, ""
    prefix_len = len(name) - len(base) + dot
    return name[:prefix_len], base[dot + 1:].lower()


def index_shard(path: str, probe: bool = True) -> List[Utterance]:
    """The utterances of one tar shard, in member order.

    For an uncompressed tar each entry points at its member's bytes (offset
    and size) and, when ``probe``, carries the audio header's sample rate
    and length; nothing is decoded. A utterance whose ``.spk`` or audio
    member is missing or unreadable gets an ``error`` (the pipeline skips it,
    naming it). A truncated or unreadable tar yields what could be indexed
    and a warning naming the shard.
    """
    groups: Dict[str, Dict[str, object]] = {}
    order: List[str] = []
    in_memory = False
    try:
        file_size = os.path.getsize(path)
    except OSError as e:
        logger.warning("skipping shard %s: %s", path, e)
        return []
    try:
        tar = tarfile.open(path, mode="r:")
    except tarfile.ReadError:
        in_memory = True
        try:
            tar = tarfile.open(path, mode="r:*")
        except (tarfile.TarError, OSError, EOFError) as e:
            logger.warning("skipping shard %s: cannot open it as a tar file (%s)", path, e)
            return []
    except OSError as e:
        logger.warning("skipping shard %s: %s", path, e)
        return []
    try:
        with tar:
            for info in tar:
                if not info.isfile():
                    continue
                prefix, suffix = _split_member_name(info.name)
                group = groups.get(prefix)
                if group is None:
                    group = groups[prefix] = {}
                    order.append(prefix)
                if suffix == "spk":
                    handle = tar.extractfile(info)
                    group["spk"] = handle.read().decode("utf-8").strip() if handle else ""
                elif suffix in AUDIO_SUFFIXES:
                    if in_memory:
                        handle = tar.extractfile(info)
                        group["audio"] = AudioRef(path=path, member_bytes=handle.read() if handle else b"")
                    elif info.offset_data + info.size > file_size:
                        group["truncated"] = True
                    else:
                        group["audio"] = AudioRef(path=path, member_offset=info.offset_data,
                                                  member_size=info.size)
    except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError) as e:
        logger.warning("shard %s is damaged after %d utterances (%s); using those", path, len(order), e)
    entries = []
    for key in order:
        group = groups[key]
        audio = group.get("audio")
        entry = Utterance(key, group.get("spk"), audio or AudioRef(path=path))
        if group.get("truncated"):
            entry = entry.replace(error=f"shard {path} ends inside the audio of {key!r} (truncated file)")
        elif audio is None:
            entry = entry.replace(error=f"shard {path} has no audio member for {key!r}")
        elif "spk" not in group:
            entry = entry.replace(error=f"shard {path} has no .spk member for {key!r}")
        elif probe:
            try:
                info = probe_audio(audio)
                entry = entry.replace(sample_rate=info.sample_rate, num_samples=info.num_samples,
                                      duration=info.duration)
            except AudioError as e:
                entry = entry.replace(error=str(e))
        entries.append(entry)
    return entries


def write_shard(path: str, members: Iterable[Tuple[str, str, bytes, str]]) -> int:
    """Write a tar shard atomically from ``(key, speaker, audio_bytes, suffix)`` tuples.

    Members are ``<key>.spk`` then ``<key>.<suffix>``, in the order given,
    with fixed metadata. Returns the number of utterances written.
    """
    count = 0
    with atomic_output(path, "wb") as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for key, speaker, audio, suffix in members:
                if "/" in key:
                    raise ShardWriteError(f"{path}: key {key!r} contains '/', which cannot name a tar member")
                for name, payload in ((f"{key}.spk", speaker.encode("utf-8")), (f"{key}.{suffix}", audio)):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    info.mtime = 0
                    info.mode = 0o644
                    tar.addfile(info, io.BytesIO(payload))
                count += 1
    return count


def _encode_pcm16(samples, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class ShardMemberMaker:
    """:func:`shard_audio_member` that runs a piped recording's command once for its
    consecutive segments (it keeps the last command's output)."""

    def __init__(self):
        self._command: Optional[str] = None
        self._decoded: Optional[Tuple[object, int]] = None

    def __call__(self, utt: Utterance) -> Tuple[str, bytes]:
        ref = utt.audio
        if ref is None:
            raise AudioError(f"utterance {utt.key!r} has no audio")
        suffix = os.path.splitext(ref.path)[1].lower()[1:]
        if not ref.is_pipe and ref.start is None and ref.end is None and suffix in COPIED_SUFFIXES \
                and ref.member_offset < 0 and ref.member_bytes is None:
            try:
                with open(ref.path, "rb") as stream:
                    return suffix, stream.read()
            except OSError as e:
                raise AudioError(f"{ref.path}: cannot read ({e.strerror})") from None
        if ref.is_pipe:
            if ref.path != self._command:
                self._decoded = load_audio(AudioRef(path=ref.path), mono=False, dtype="int16")
                self._command = ref.path
            samples, rate = self._decoded
            first = int(round(ref.start * rate)) if ref.start else 0
            last = int(round(ref.end * rate)) if ref.end is not None else len(samples)
            samples = samples[first:min(last, len(samples))]
            if len(samples) == 0:
                raise AudioError(f"{ref.describe()}: no samples")
        else:
            samples, rate = load_audio(ref, mono=False, dtype="int16")
        if samples.ndim == 2 and samples.shape[1] == 1:
            samples = samples[:, 0]
        return "wav", _encode_pcm16(samples, rate)


def shard_audio_member(utt: Utterance) -> Tuple[str, bytes]:
    """``(suffix, bytes)`` of an utterance's audio member (see the module doc)."""
    return ShardMemberMaker()(utt)


def write_utterance_shard(path: str, utterances: Sequence[Utterance]) -> int:
    """Write the utterances (their speakers and audio) as one shard; raises
    :class:`ShardWriteError` naming the utterance and its audio."""
    make_member = ShardMemberMaker()

    def members():
        for utt in utterances:
            try:
                suffix, audio = make_member(utt)
            except AudioError as e:
                raise ShardWriteError(f"{path}: utterance '{utt.key}' ('{utt.source()}'): {e}") from None
            if utt.speaker is None:
                raise ShardWriteError(f"{path}: utterance '{utt.key}' has no speaker")
            yield utt.key, utt.speaker, audio, suffix
    return write_shard(path, members())


def _write_task(task: Tuple[str, Sequence[Utterance]]) -> Optional[str]:
    path, utterances = task
    try:
        write_utterance_shard(path, utterances)
    except ShardWriteError as e:
        return str(e)
    return None


def write_shards(utterances: Sequence[Utterance], shard_dir: str, num_utts_per_shard: int = 1000,
                 prefix: str = "shards", num_threads: int = 1) -> List[str]:
    """Cut ``utterances`` (in the order given) into shards ``shard_dir/<prefix>_000000.tar``, ...
    of ``num_utts_per_shard`` each, written by ``num_threads`` processes; returns their paths.

    Raises :class:`ShardWriteError` listing (up to 10 of) the shards that failed;
    the shards that were written stay complete, none is left half-written.
    """
    if num_utts_per_shard < 1:
        raise ValueError("num_utts_per_shard must be >= 1")
    for utt in utterances:
        if "/" in utt.key:
            raise ShardWriteError(f"utterance key '{utt.key}' contains '/', which cannot name a tar member")
    os.makedirs(shard_dir, exist_ok=True)
    tasks = [(os.path.join(shard_dir, f"{prefix}_{index:06d}.tar"),
              utterances[begin:begin + num_utts_per_shard])
             for index, begin in enumerate(range(0, len(utterances), num_utts_per_shard))]
    if num_threads <= 1 or len(tasks) <= 1:
        errors = [_write_task(task) for task in tasks]
    else:
        with multiprocessing.get_context("spawn").Pool(min(num_threads, len(tasks))) as pool:
            errors = pool.map(_write_task, tasks, chunksize=1)
    errors = [e for e in errors if e]
    if errors:
        more = f"\n... and {len(errors) - 10} more shards failed" if len(errors) > 10 else ""
        raise ShardWriteError("\n".join(errors[:10]) + more)
    return [path for path, _ in tasks]
