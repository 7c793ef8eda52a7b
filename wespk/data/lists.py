"""Data lists: what the training and extraction pipelines read.

Three kinds, named by ``data_type`` as in WeSpeaker:

``raw``
    JSON lines ``{"key", "wav", "spk"[, "start", "end", "duration"]}`` (the
    format of ``tools/make_raw_list.py``; ``start``/``end`` in seconds cut a
    segment), or directly a Kaldi data dir (``wav.scp``, ``utt2spk``, optional
    ``segments`` and ``utt2dur``), or a ``wav.scp`` file with those files
    next to it.
``shard``
    One tar shard path per line. A shard holds ``<key>.spk`` (the speaker, as
    text) and ``<key>.wav`` / ``<key>.flac`` members. Uncompressed shards are
    indexed (member offsets and audio headers, no decoding) so that only the
    audio a sample needs is read; compressed shards are read into memory.
``feat``
    JSON lines ``{"key", "feat", "spk"[, "num_frames"]}`` (``feat`` a Kaldi
    ``ark:offset`` specifier), or a ``feats.scp`` with ``utt2spk`` (and
    optionally ``utt2num_frames``) next to it.
"""

import io
import json
import logging
import os
import tarfile
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from wespk.data.audio_reader import AudioRef, probe_audio, ref_from_wav_scp_value
from wespk.io.audio import AudioError
from wespk.io.files import DataFileError, atomic_output, read_kaldi_map

logger = logging.getLogger(__name__)

DATA_TYPES = ("raw", "shard", "feat")

#: Tar member suffixes taken as audio (what soundfile can decode).
AUDIO_SUFFIXES = frozenset({"wav", "flac", "ogg", "opus", "mp3"})


@dataclass
class UtteranceEntry:
    """One utterance of a list: its key, speaker and where its data is.

    ``sample_rate``/``num_samples`` are filled when a header was read while
    indexing (shards); ``duration`` when the list gives it; ``error`` when
    indexing found the utterance unusable (the pipeline then skips it,
    naming it).
    """

    __slots__ = ("key", "spk", "audio", "feat", "duration", "num_frames",
                 "sample_rate", "num_samples", "error")

    key: str
    spk: Optional[str]
    audio: Optional[AudioRef]
    feat: Optional[str]
    duration: Optional[float]
    num_frames: Optional[int]
    sample_rate: Optional[int]
    num_samples: Optional[int]
    error: Optional[str]

    @classmethod
    def for_audio(cls, key: str, spk: Optional[str], audio: AudioRef,
                  duration: Optional[float] = None) -> "UtteranceEntry":
        return cls(key, spk, audio, None, duration, None, None, None, None)

    @classmethod
    def for_feat(cls, key: str, spk: Optional[str], feat: str,
                 num_frames: Optional[int] = None) -> "UtteranceEntry":
        return cls(key, spk, None, feat, None, num_frames, None, None, None)

    def source(self) -> str:
        """Where the data is, for messages."""
        if self.audio is not None:
            return self.audio.describe()
        return self.feat or "?"


def _first_content_line(path: str) -> Optional[str]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                return line.strip()
    return None


def _is_json_lines(path: str) -> bool:
    first = _first_content_line(path)
    return first is not None and first.startswith("{")


def _resolve(path: str, base_dir: str) -> str:
    if os.path.isabs(path) or os.path.exists(path):
        return path
    candidate = os.path.join(base_dir, path)
    return candidate if os.path.exists(candidate) else path


def _optional_float(value, path: str, line_no: int, name: str) -> Optional[float]:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataFileError(path, line_no, f"{name} must be a number, got {value!r}") from None


def read_json_lines(path: str, required: Sequence[str]) -> Iterator[Tuple[int, dict]]:
    """``(line_no, object)`` for each line of a JSON-lines file; checks fields."""
    if not os.path.isfile(path):
        raise DataFileError(path, None, "file not found")
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFileError(path, line_no, f"invalid JSON: {e}") from None
            if not isinstance(obj, dict):
                raise DataFileError(path, line_no, "expected a JSON object")
            missing = [name for name in required if name not in obj]
            if missing:
                raise DataFileError(path, line_no, f"missing field(s) {missing}")
            yield line_no, obj


def read_data_dir_entries(data_dir: str, need_spk: bool = True) -> List[UtteranceEntry]:
    """Entries of a Kaldi data dir (``wav.scp`` [+ ``segments``], ``utt2spk``, ``utt2dur``)."""
    wav_scp = read_kaldi_map(os.path.join(data_dir, "wav.scp"))
    utt2spk_path = os.path.join(data_dir, "utt2spk")
    if need_spk or os.path.isfile(utt2spk_path):
        utt2spk = read_kaldi_map(utt2spk_path)
    else:
        utt2spk = {}
    utt2dur_path = os.path.join(data_dir, "utt2dur")
    utt2dur = read_kaldi_map(utt2dur_path) if os.path.isfile(utt2dur_path) else {}
    segments_path = os.path.join(data_dir, "segments")
    entries = []
    if os.path.isfile(segments_path):
        with open(segments_path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 4:
                    raise DataFileError(segments_path, line_no, "expected 'utt rec start end'")
                utt, rec = fields[0], fields[1]
                if rec not in wav_scp:
                    raise DataFileError(segments_path, line_no, f"recording {rec!r} not in wav.scp")
                start = _optional_float(fields[2], segments_path, line_no, "start")
                end = _optional_float(fields[3], segments_path, line_no, "end")
                ref = ref_from_wav_scp_value(wav_scp[rec], start=start, end=end, base_dir=data_dir)
                entries.append(UtteranceEntry.for_audio(utt, utt2spk.get(utt), ref,
                                                        duration=(end - start) if end > 0 else None))
    else:
        for utt, value in wav_scp.items():
            dur = utt2dur.get(utt)
            entries.append(UtteranceEntry.for_audio(utt, utt2spk.get(utt),
                                                    ref_from_wav_scp_value(value, base_dir=data_dir),
                                                    duration=float(dur) if dur else None))
    if need_spk:
        missing = [e.key for e in entries if e.spk is None]
        if missing:
            raise DataFileError(utt2spk_path, None,
                                f"{len(missing)} utterance(s) have no speaker, e.g. {missing[0]!r}")
    return entries


def read_raw_list(path: str, need_spk: bool = True) -> List[UtteranceEntry]:
    """Entries of a raw list, a Kaldi data dir, or a ``wav.scp`` (see module doc)."""
    if os.path.isdir(path):
        return read_data_dir_entries(path, need_spk)
    if not os.path.isfile(path):
        raise DataFileError(path, None, "file not found")
    if not _is_json_lines(path):
        directory = os.path.dirname(path) or "."
        if os.path.basename(path) != "wav.scp" and need_spk:
            raise DataFileError(path, None, "not a JSON-lines raw list; a Kaldi list must be "
                                            "a data dir or its wav.scp")
        if os.path.basename(path) == "wav.scp":
            return read_data_dir_entries(directory, need_spk)
        return [UtteranceEntry.for_audio(k, None, ref_from_wav_scp_value(v, base_dir=directory))
                for k, v in read_kaldi_map(path).items()]
    base_dir = os.path.dirname(path) or "."
    entries = []
    required = ("key", "wav", "spk") if need_spk else ("key", "wav")
    for line_no, obj in read_json_lines(path, required):
        start = _optional_float(obj.get("start"), path, line_no, "start")
        end = _optional_float(obj.get("end"), path, line_no, "end")
        duration = _optional_float(obj.get("duration"), path, line_no, "duration")
        wav = str(obj["wav"])
        if not wav.rstrip().endswith("|"):
            wav = _resolve(wav, base_dir)
        ref = AudioRef(path=wav, start=start, end=end)
        spk = obj.get("spk")
        entries.append(UtteranceEntry.for_audio(str(obj["key"]), None if spk is None else str(spk),
                                                ref, duration))
    return entries


def read_feat_list(path: str, need_spk: bool = True) -> List[UtteranceEntry]:
    """Entries of a feature list: JSON lines, a ``feats.scp``, or a dir holding one."""
    if os.path.isdir(path):
        path = os.path.join(path, "feats.scp")
    if not os.path.isfile(path):
        raise DataFileError(path, None, "file not found")
    entries = []
    if _is_json_lines(path):
        required = ("key", "feat", "spk") if need_spk else ("key", "feat")
        for _, obj in read_json_lines(path, required):
            frames = obj.get("num_frames")
            spk = obj.get("spk")
            entries.append(UtteranceEntry.for_feat(str(obj["key"]), None if spk is None else str(spk),
                                                   str(obj["feat"]),
                                                   int(frames) if frames is not None else None))
        return entries
    directory = os.path.dirname(path) or "."
    feats = read_kaldi_map(path)
    utt2spk_path = os.path.join(directory, "utt2spk")
    utt2spk = read_kaldi_map(utt2spk_path) if (need_spk or os.path.isfile(utt2spk_path)) else {}
    frames_path = os.path.join(directory, "utt2num_frames")
    utt2frames = read_kaldi_map(frames_path) if os.path.isfile(frames_path) else {}
    for key, value in feats.items():
        if need_spk and key not in utt2spk:
            raise DataFileError(utt2spk_path, None, f"utterance {key!r} of {path} has no speaker")
        frames = utt2frames.get(key)
        entries.append(UtteranceEntry.for_feat(key, utt2spk.get(key), value.strip(),
                                               int(frames) if frames else None))
    return entries


def read_shard_list(path: str) -> List[str]:
    """Shard paths of a shard list (relative paths resolved against the list's dir)."""
    if not os.path.isfile(path):
        raise DataFileError(path, None, "file not found")
    base_dir = os.path.dirname(path) or "."
    shards = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                shards.append(_resolve(line, base_dir))
    return shards


def _split_member_name(name: str) -> Tuple[str, str]:
    base = os.path.basename(name)
    dot = base.rfind(".")
    if dot <= 0:
        return name, ""
    prefix_len = len(name) - len(base) + dot
    return name[:prefix_len], base[dot + 1:].lower()


def index_shard(path: str, probe: bool = True) -> List[UtteranceEntry]:
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
        entry = UtteranceEntry.for_audio(key, group.get("spk"), audio or AudioRef(path=path))
        if group.get("truncated"):
            entry.error = f"shard {path} ends inside the audio of {key!r} (truncated file)"
        elif audio is None:
            entry.error = f"shard {path} has no audio member for {key!r}"
        elif "spk" not in group:
            entry.error = f"shard {path} has no .spk member for {key!r}"
        elif probe:
            try:
                info = probe_audio(audio)
                entry.sample_rate, entry.num_samples = info.sample_rate, info.num_samples
                entry.duration = info.duration
            except AudioError as e:
                entry.error = str(e)
        entries.append(entry)
    return entries


def write_shard(path: str, entries: Iterable[Tuple[str, str, bytes, str]]) -> int:
    """Write a tar shard atomically from ``(key, spk, audio_bytes, suffix)`` tuples.

    Members are ``<key>.spk`` then ``<key>.<suffix>``, in the order given.
    Returns the number of utterances written.
    """
    count = 0
    with atomic_output(path, "wb") as f:
        with tarfile.open(fileobj=f, mode="w") as tar:
            for key, spk, audio, suffix in entries:
                for name, payload in ((f"{key}.spk", spk.encode("utf-8")), (f"{key}.{suffix}", audio)):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
                count += 1
    return count


def detect_data_type(path: str) -> str:
    """Guess ``raw``/``shard``/``feat`` from a list's first line (dirs: raw or feat)."""
    if os.path.isdir(path):
        return "feat" if os.path.isfile(os.path.join(path, "feats.scp")) and \
            not os.path.isfile(os.path.join(path, "wav.scp")) else "raw"
    if os.path.basename(path) == "feats.scp":
        return "feat"
    if os.path.basename(path) == "wav.scp":
        return "raw"
    first = _first_content_line(path) if os.path.isfile(path) else None
    if first is None:
        raise DataFileError(path, None, "empty or missing list")
    if first.startswith("{"):
        return "feat" if '"feat"' in first else "raw"
    if first.split()[0].endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "shard"
    raise DataFileError(path, 1, "cannot tell the list type; pass data_type")


def read_entries(path: str, data_type: str, need_spk: bool = True) -> List[UtteranceEntry]:
    """All entries of a list (shards are indexed; their headers probed)."""
    if data_type == "raw":
        return read_raw_list(path, need_spk)
    if data_type == "feat":
        return read_feat_list(path, need_spk)
    if data_type == "shard":
        entries = []
        for shard in read_shard_list(path):
            entries.extend(index_shard(shard))
        return entries
    raise ValueError(f"unknown data_type {data_type!r}; choose from {', '.join(DATA_TYPES)}")
