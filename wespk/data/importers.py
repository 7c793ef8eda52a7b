"""Corpus importers: folders, CSV and JSON-lines manifests -> Kaldi data dirs.

Each importer returns a list of :class:`ImportedUtterance`; :func:`write_data_dir`
turns it into a sorted Kaldi data dir (``wav.scp``, ``utt2spk``, ``spk2utt``,
``utt2dur`` and, for utterances cut from longer recordings, ``segments``),
every file written atomically. :func:`prepare_data_dir` does both.

Identifiers follow Kaldi's convention: every utterance id starts with its
speaker id (``<spk>-...``, unless the name already starts with the speaker id),
so that sorting by utterance also groups speakers. A ``prefix`` (a corpus
name) is put in front of both, ``<prefix>-<spk>`` and ``<prefix>-<utt>``, so
several corpora can be combined (``tools/combine_data.sh``) without clashes.
Whitespace in ids becomes ``_``.

Audio headers are read (in parallel threads) to check that every file opens
and to measure durations; unreadable files are dropped and reported, or make
the import fail with ``strict=True``.
"""

import csv
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import soundfile

from wespk.io.files import DataFileError, utt2spk_to_spk2utt, write_kaldi_map
from wespk.data.data_dir import read_json_lines

logger = logging.getLogger(__name__)

LAYOUTS = ("folder", "csv", "jsonl")
DEFAULT_EXTENSIONS = ("wav", "flac")


@dataclass
class ImportedUtterance:
    """One utterance found by an importer: a row of the data dir about to be written.

    ``start``/``end`` (seconds) are set when the utterance is a part of a
    longer recording; ``recording`` then names that recording (the
    ``segments`` key), and ``origin`` says where it was found (a manifest line
    or a file) for the report of what was dropped. Both exist only while a
    data dir is made; what is read back from a data dir is a
    :class:`wespk.data.records.Utterance`.
    """

    utt: str
    spk: str
    path: str
    duration: Optional[float] = None
    start: Optional[float] = None
    end: Optional[float] = None
    recording: Optional[str] = None
    origin: str = ""


@dataclass
class ImportReport:
    """What an import wrote and what it dropped (``(origin, reason)`` pairs)."""

    data_dir: str
    num_utterances: int = 0
    num_speakers: int = 0
    total_duration: float = 0.0
    has_segments: bool = False
    dropped: List[Tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """A one-line description."""
        text = (f"{self.data_dir}: {self.num_utterances} utterances, {self.num_speakers} speakers, "
                f"{self.total_duration / 3600:.2f} h")
        if self.has_segments:
            text += " (with segments)"
        if self.dropped:
            text += f"; dropped {len(self.dropped)} (e.g. {self.dropped[0][0]}: {self.dropped[0][1]})"
        return text


class CorpusImportError(ValueError):
    """A manifest or folder that cannot be imported; names the file and line."""


def clean_id(text: str) -> str:
    """``text`` with whitespace runs replaced by ``_`` (Kaldi ids have no spaces)."""
    cleaned = re.sub(r"\s+", "_", text.strip())
    if not cleaned:
        raise ValueError("empty identifier")
    return cleaned


def make_ids(spk: str, name: str, prefix: Optional[str]) -> Tuple[str, str]:
    """``(speaker_id, utterance_id)`` with the utterance id starting with the speaker id."""
    spk, name = clean_id(spk), clean_id(name)
    utt = name if name == spk or name.startswith(spk + "-") or name.startswith(spk + "_") \
        else f"{spk}-{name}"
    if prefix:
        prefix = clean_id(prefix)
        return f"{prefix}-{spk}", f"{prefix}-{utt}"
    return spk, utt


def _strip_extension(path: str) -> str:
    return os.path.splitext(path)[0]


def _relative_name(path: str, root: str) -> str:
    return _strip_extension(os.path.relpath(path, root)).replace(os.sep, "-")


# ------------------------------------------------------------- importers ---
def import_folder(root: str, prefix: Optional[str] = None,
                  extensions: Sequence[str] = DEFAULT_EXTENSIONS) -> List[ImportedUtterance]:
    """Utterances of ``<root>/<speaker>/.../<utt>.<ext>`` (any depth below the speaker).

    The speaker is the first directory level; the utterance id is the path
    below the speaker directory, without extension, ``/`` replaced by ``-``
    (``id10001/1zcIwhmdeo4/00001.wav`` -> ``id10001-1zcIwhmdeo4-00001``).
    Files directly under ``root`` have no speaker and are an error.
    """
    if not os.path.isdir(root):
        raise CorpusImportError(f"{root}: not a directory")
    suffixes = tuple("." + e.lower().lstrip(".") for e in extensions)
    found: List[ImportedUtterance] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.lower().endswith(suffixes):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            parts = rel.split(os.sep)
            if len(parts) < 2:
                raise CorpusImportError(f"{path}: audio directly under {root}; expected "
                                   "<root>/<speaker>/<utterance>")
            spk_dir = os.path.join(root, parts[0])
            spk, utt = make_ids(parts[0], _relative_name(path, spk_dir), prefix)
            found.append(ImportedUtterance(utt=utt, spk=spk, path=os.path.abspath(path), origin=path))
    if not found:
        raise CorpusImportError(f"{root}: no audio files ({', '.join(suffixes)}) found")
    return found


def _resolve_audio_path(path: str, manifest_dir: str, data_root: Optional[str]) -> str:
    if data_root is not None:
        path = path.replace("$data_root", data_root).replace("{data_root}", data_root)
    if not os.path.isabs(path):
        path = os.path.join(manifest_dir, path)
    return os.path.abspath(path)


def _float_field(value: str, path: str, line_no: int, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataFileError(path, line_no, f"{name} must be a number, got {value!r}") from None


def import_csv(manifest: str, prefix: Optional[str] = None, data_root: Optional[str] = None,
               segment_unit: str = "samples") -> List[ImportedUtterance]:
    """Utterances of a CSV manifest with header ``ID,duration,wav,spk_id``.

    This is SpeechBrain's layout: optional ``start``/``stop`` columns cut a
    segment, in samples (SpeechBrain's VoxCeleb convention) or seconds
    (``segment_unit="seconds"``); ``$data_root`` in paths is replaced by
    ``data_root``; relative paths are relative to the manifest's directory.
    Errors name the file and line.
    """
    if segment_unit not in ("samples", "seconds"):
        raise ValueError(f"segment_unit must be 'samples' or 'seconds', got {segment_unit!r}")
    if not os.path.isfile(manifest):
        raise DataFileError(manifest, None, "file not found")
    manifest_dir = os.path.dirname(os.path.abspath(manifest))
    found: List[ImportedUtterance] = []
    with open(manifest, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        missing = [c for c in ("ID", "duration", "wav", "spk_id") if c not in header]
        if missing:
            raise DataFileError(manifest, 1, f"header lacks column(s) {missing}; expected ID,duration,wav,spk_id")
        has_span = "start" in header and "stop" in header
        for row in reader:
            line_no = reader.line_num
            if not any((v or "").strip() for v in row.values()):
                continue
            if not row.get("ID") or not row.get("wav") or not row.get("spk_id"):
                raise DataFileError(manifest, line_no, "empty ID, wav or spk_id")
            path = _resolve_audio_path(row["wav"].strip(), manifest_dir, data_root)
            spk, utt = make_ids(row["spk_id"], row["ID"], prefix)
            duration = _float_field(row["duration"], manifest, line_no, "duration")
            start = end = None
            if has_span and (row.get("start") or "").strip() and (row.get("stop") or "").strip():
                start = _float_field(row["start"], manifest, line_no, "start")
                end = _float_field(row["stop"], manifest, line_no, "stop")
                if end <= start:
                    raise DataFileError(manifest, line_no, f"stop ({end}) must be after start ({start})")
            found.append(ImportedUtterance(utt=utt, spk=spk, path=path, duration=duration,
                                           start=start, end=end,
                                           origin=f"{manifest}:{line_no}"))
            if start is not None and segment_unit == "seconds":
                found[-1].duration = end - start
    if not found:
        raise DataFileError(manifest, None, "no utterances")
    if segment_unit == "samples":
        _samples_to_seconds(found)
    return found


def _samples_to_seconds(utterances: List[ImportedUtterance]) -> None:
    rates: Dict[str, int] = {}
    for u in utterances:
        if u.start is None:
            continue
        if u.path not in rates:
            try:
                rates[u.path] = soundfile.info(u.path).samplerate
            except (RuntimeError, OSError, soundfile.LibsndfileError):
                rates[u.path] = 0
        rate = rates[u.path]
        if rate:
            u.start, u.end = u.start / rate, u.end / rate
            u.duration = u.end - u.start
        else:
            u.start = u.end = None  # unreadable: dropped when headers are checked


def import_jsonl(manifest: str, prefix: Optional[str] = None) -> List[ImportedUtterance]:
    """Utterances of a JSON-lines manifest ``{"audio_filepath", "duration", "label"}``.

    This is NeMo's speaker-recognition layout; an ``offset`` field (seconds)
    cuts a segment of ``duration`` seconds from that point. Utterance ids come
    from the audio path below the manifest's common directory (plus the offset
    in milliseconds for segments). Relative paths are relative to the
    manifest's directory.
    """
    manifest_dir = os.path.dirname(os.path.abspath(manifest))
    rows = []
    for line_no, obj in read_json_lines(manifest, ("audio_filepath", "duration", "label")):
        path = _resolve_audio_path(str(obj["audio_filepath"]), manifest_dir, None)
        duration = _float_field(obj["duration"], manifest, line_no, "duration")
        offset = obj.get("offset")
        offset = _float_field(offset, manifest, line_no, "offset") if offset is not None else None
        rows.append((line_no, path, duration, offset, str(obj["label"])))
    if not rows:
        raise DataFileError(manifest, None, "no utterances")
    common = os.path.commonpath([os.path.dirname(r[1]) for r in rows])
    uses_of_path: Dict[str, int] = {}
    for row in rows:
        uses_of_path[row[1]] = uses_of_path.get(row[1], 0) + 1
    found = []
    for line_no, path, duration, offset, label in rows:
        name = _relative_name(path, common)
        start = end = None
        # A segment when the offset says so: past the file start, or one of
        # several pieces of the same file. Otherwise the whole file.
        if offset is not None and (offset > 0 or uses_of_path[path] > 1):
            start, end = offset, offset + duration
            name = f"{name}-{int(round(offset * 1000)):08d}"
        spk, utt = make_ids(label, name, prefix)
        found.append(ImportedUtterance(utt=utt, spk=spk, path=path, duration=duration,
                                       start=start, end=end, origin=f"{manifest}:{line_no}"))
    return found


# --------------------------------------------------------------- writing ---
def _probe(path: str) -> Tuple[Optional[float], Optional[str]]:
    try:
        info = soundfile.info(path)
    except FileNotFoundError:
        return None, "file not found"
    except (RuntimeError, OSError, soundfile.LibsndfileError) as e:
        return None, f"cannot read audio header ({e})"
    if info.frames <= 0:
        return None, "no samples"
    return info.frames / info.samplerate, None


def check_audio(utterances: List[ImportedUtterance], num_threads: int = 8,
                strict: bool = False) -> Tuple[List[ImportedUtterance], List[Tuple[str, str]]]:
    """Keep utterances whose audio opens; fill durations from headers.

    Returns ``(kept, dropped)``; ``dropped`` holds ``(origin, reason)``. With
    ``strict`` the first problem raises :class:`CorpusImportError`.
    """
    paths = sorted({u.path for u in utterances})
    with ThreadPoolExecutor(max_workers=max(1, num_threads)) as pool:
        probed = dict(zip(paths, pool.map(_probe, paths)))
    kept, dropped = [], []
    for u in utterances:
        file_duration, problem = probed[u.path]
        if problem is None and u.start is not None:
            if u.start >= file_duration:
                problem = f"segment starts at {u.start:.3f} s, after the end of the file ({file_duration:.3f} s)"
            else:
                u.end = min(u.end, file_duration)
                u.duration = u.end - u.start
        elif problem is None:
            u.duration = file_duration
        if problem is not None:
            if strict:
                raise CorpusImportError(f"{u.origin or u.path}: {u.path}: {problem}")
            dropped.append((u.origin or u.path, problem))
            continue
        kept.append(u)
    return kept, dropped


def write_data_dir(utterances: List[ImportedUtterance], data_dir: str) -> ImportReport:
    """Write a sorted Kaldi data dir; raises :class:`CorpusImportError` on duplicate ids.

    With any segmented utterance every utterance goes through ``segments``
    (whole files as segments from 0 to their duration); recordings are named
    by the utterance id for whole files and by the audio path otherwise.
    A stale ``segments`` from an earlier import is removed.
    """
    seen: Dict[str, ImportedUtterance] = {}
    for u in utterances:
        if u.utt in seen:
            raise CorpusImportError(f"duplicate utterance id {u.utt!r}: {seen[u.utt].origin or seen[u.utt].path} "
                               f"and {u.origin or u.path}")
        seen[u.utt] = u
    if not utterances:
        raise CorpusImportError(f"{data_dir}: nothing to write (no usable utterance)")
    segmented = any(u.start is not None for u in utterances)
    utt2spk = {u.utt: u.spk for u in utterances}
    utt2dur = {u.utt: f"{u.duration:.3f}" for u in utterances if u.duration is not None}
    os.makedirs(data_dir, exist_ok=True)
    if segmented:
        rec_of_path: Dict[str, str] = {}
        wav_scp: Dict[str, str] = {}
        segments: Dict[str, str] = {}
        for u in sorted(utterances, key=lambda x: x.utt.encode("utf-8")):
            rec = rec_of_path.get(u.path)
            if rec is None:
                rec = u.recording or (u.utt if u.start is None else
                                      f"{u.spk}-{clean_id(os.path.splitext(os.path.basename(u.path))[0])}")
                base, n = rec, 1
                while rec in wav_scp:
                    n += 1
                    rec = f"{base}-{n}"
                rec_of_path[u.path] = rec
                wav_scp[rec] = u.path
            start = u.start if u.start is not None else 0.0
            end = u.end if u.end is not None else start + (u.duration or 0.0)
            segments[u.utt] = f"{rec} {start:.3f} {end:.3f}"
        write_kaldi_map(os.path.join(data_dir, "wav.scp"), wav_scp)
        write_kaldi_map(os.path.join(data_dir, "segments"), segments)
    else:
        write_kaldi_map(os.path.join(data_dir, "wav.scp"), {u.utt: u.path for u in utterances})
        stale = os.path.join(data_dir, "segments")
        if os.path.exists(stale):
            os.unlink(stale)
    write_kaldi_map(os.path.join(data_dir, "utt2spk"), utt2spk)
    write_kaldi_map(os.path.join(data_dir, "spk2utt"), utt2spk_to_spk2utt(utt2spk), sort=False)
    if len(utt2dur) == len(utterances):
        write_kaldi_map(os.path.join(data_dir, "utt2dur"), utt2dur)
    for name in ("feats.scp", "utt2num_frames", "raw.list", "shard.list"):
        if os.path.exists(os.path.join(data_dir, name)):
            logger.warning("%s/%s is from an earlier run and may not match the new import", data_dir, name)
    return ImportReport(data_dir=data_dir, num_utterances=len(utterances),
                        num_speakers=len(set(utt2spk.values())),
                        total_duration=sum(u.duration or 0.0 for u in utterances),
                        has_segments=segmented)


def prepare_data_dir(layout: str, source: str, data_dir: str, prefix: Optional[str] = None,
                     extensions: Sequence[str] = DEFAULT_EXTENSIONS, data_root: Optional[str] = None,
                     segment_unit: str = "samples", strict: bool = False,
                     num_threads: int = 8) -> ImportReport:
    """Import ``source`` (a folder or a manifest) with ``layout`` into ``data_dir``.

    ``layout`` is ``folder``, ``csv`` or ``jsonl`` (see :func:`import_folder`,
    :func:`import_csv`, :func:`import_jsonl`). Unreadable audio is dropped and
    listed in the report (an error with ``strict``).
    """
    if layout == "folder":
        utterances = import_folder(source, prefix, extensions)
    elif layout == "csv":
        utterances = import_csv(source, prefix, data_root, segment_unit)
    elif layout == "jsonl":
        utterances = import_jsonl(source, prefix)
    else:
        raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    kept, dropped = check_audio(utterances, num_threads=num_threads, strict=strict)
    for origin, reason in dropped[:20]:
        logger.warning("dropped %s: %s", origin, reason)
    if len(dropped) > 20:
        logger.warning("... and %d more dropped", len(dropped) - 20)
    report = write_data_dir(kept, data_dir)
    report.dropped = dropped
    return report
