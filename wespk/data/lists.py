"""Data lists: what the training and extraction pipelines read.

Three kinds, named by ``data_type`` as in WeSpeaker:

``raw``
    JSON lines ``{"key", "wav", "spk"[, "start", "end", "duration"]}`` (the
    format of ``tools/make_raw_list.py``; ``start``/``end`` in seconds cut a
    segment), or directly a Kaldi data dir (``wav.scp``, ``utt2spk``, optional
    ``segments`` and ``utt2dur``), or a ``wav.scp`` file with those files
    next to it; read by :func:`wespk.data.data_dir.read_utterances`.
``shard``
    One tar shard path per line; shards are written and indexed by
    :mod:`wespk.data.shards`.
``feat``
    JSON lines ``{"key", "feat", "spk"[, "num_frames"]}`` (``feat`` a Kaldi
    ``ark:offset`` specifier), or a ``feats.scp`` with ``utt2spk`` (and
    optionally ``utt2num_frames``) next to it.

Every reader gives :class:`~wespk.data.records.Utterance` records.
"""

import logging
import os
from typing import List

from wespk.data.data_dir import is_json_lines, read_json_lines, read_utterances, resolve_audio_path
from wespk.data.records import Utterance
from wespk.data.shards import index_shard
from wespk.io.files import DataFileError, read_kaldi_map

logger = logging.getLogger(__name__)

DATA_TYPES = ("raw", "shard", "feat")


def read_feat_list(path: str, need_spk: bool = True) -> List[Utterance]:
    """Utterances of a feature list: JSON lines, a ``feats.scp``, or a dir holding one."""
    if os.path.isdir(path):
        path = os.path.join(path, "feats.scp")
    if not os.path.isfile(path):
        raise DataFileError(path, None, "file not found")
    entries = []
    if is_json_lines(path):
        required = ("key", "feat", "spk") if need_spk else ("key", "feat")
        for _, obj in read_json_lines(path, required):
            frames = obj.get("num_frames")
            spk = obj.get("spk")
            entries.append(Utterance(str(obj["key"]), None if spk is None else str(spk),
                                     feat=str(obj["feat"]),
                                     num_frames=int(frames) if frames is not None else None))
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
        entries.append(Utterance(key, utt2spk.get(key), feat=value.strip(),
                                 num_frames=int(frames) if frames else None))
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
                shards.append(resolve_audio_path(line, base_dir))
    return shards


def detect_data_type(path: str) -> str:
    """Guess ``raw``/``shard``/``feat`` from a list's first line (dirs: raw or feat)."""
    if os.path.isdir(path):
        return "feat" if os.path.isfile(os.path.join(path, "feats.scp")) and \
            not os.path.isfile(os.path.join(path, "wav.scp")) else "raw"
    if os.path.basename(path) == "feats.scp":
        return "feat"
    if os.path.basename(path) == "wav.scp":
        return "raw"
    first = None
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            first = next((line.strip() for line in f if line.strip()), None)
    if first is None:
        raise DataFileError(path, None, "empty or missing list")
    if first.startswith("{"):
        return "feat" if '"feat"' in first else "raw"
    if first.split()[0].endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "shard"
    raise DataFileError(path, 1, "cannot tell the list type; pass data_type")


def read_entries(path: str, data_type: str, need_spk: bool = True) -> List[Utterance]:
    """All utterances of a list (shards are indexed; their headers probed)."""
    if data_type == "raw":
        return read_utterances(path, need_spk)
    if data_type == "feat":
        return read_feat_list(path, need_spk)
    if data_type == "shard":
        entries = []
        for shard in read_shard_list(path):
            entries.extend(index_shard(shard))
        return entries
    raise ValueError(f"unknown data_type {data_type!r}; choose from {', '.join(DATA_TYPES)}")
