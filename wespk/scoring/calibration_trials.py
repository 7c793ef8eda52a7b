"""Calibration trial lists drawn from a training set, by duration condition.

Modelled on WeSpeaker's ``tools/generate_calibration_trial.py``: utterances
are split into short (``short_min < dur < short_max``, default 2-6 s) and
long (``dur > long_min``, default 6 s); only speakers with both kinds are
used. Each round picks an enrollment speaker and a different non-target
speaker and writes six trials: a target and a non-target trial for each of
short-short, short-long and long-long (the non-target trial reuses the target
trial's enrollment utterance). WeSpeaker's default ``each_trial_num=10000``
is ``rounds=5000`` here (30 000 trials).

Differences, on purpose: the generator is seeded (``random.Random(seed)``
over C-sorted speakers and utterances), so the list is a pure function of its
inputs; speakers come from ``utt2spk`` instead of the first ``/`` field of the
utterance id; and a target pair never pairs an utterance with itself unless
``allow_same_utterance`` is set (then speakers with a single short or long
utterance are also eligible, and pairs are drawn with replacement as
WeSpeaker does).

:func:`read_durations` reads the ``utt2dur`` files that this module and QMF
calibration need.
"""

import logging
import os
import random
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from wespk.io.byte_table import parse_byte_table, parse_decimals
from wespk.io.files import DataFileError, read_kaldi_map

logger = logging.getLogger(__name__)

Trial = Tuple[str, str, str]
PathLike = Union[str, os.PathLike]


def _bulk_durations(path: PathLike) -> Optional[Tuple[List[str], List[float]]]:
    """``(keys, seconds)`` of a plain-ASCII ``utt2dur`` read in bulk (:mod:`wespk.io.byte_table`), or None
    when the file needs the line-by-line reader (which also gives every error): another byte, a line
    without exactly two fields, a value ``float()`` does not take, or a repeated key."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    table = parse_byte_table(os.fspath(path), data, width=2)
    if table is None:
        return None
    keys = table.strings(0)
    values, exact = parse_decimals(table, 1)
    seconds = values.tolist()
    for row in np.flatnonzero(~exact).tolist():  # exponents, more digits, inf: Python's float(), as before
        try:
            seconds[row] = float(table.field(row, 1))
        except ValueError:
            return None
    if len(set(keys)) != len(keys):
        return None
    return keys, seconds


def read_durations(paths: Union[PathLike, Sequence[PathLike]]) -> Dict[str, float]:
    """Read one or more ``utt2dur`` files (``utt seconds``) into a dict; the first value of a key wins.

    A key repeated within one file, a line that is not ``utt seconds`` or a value that is not a number is
    an error naming the file and line. Plain-ASCII files (VoxCeleb2's has a million lines) are read in
    bulk, to the same values.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    durations: Dict[str, float] = {}
    for path in paths:
        bulk = _bulk_durations(path)
        if bulk is not None:
            if not durations:
                durations = dict(zip(*bulk))
            else:
                for key, value in zip(*bulk):
                    durations.setdefault(key, value)
            continue
        for key, value in read_kaldi_map(path).items():
            if key in durations:
                continue
            try:
                durations[key] = float(value)
            except ValueError:
                raise DataFileError(path, _line_of_key(path, key),
                                    f"duration of {key!r} is not a number: {value!r}") from None
    return durations


def _line_of_key(path: PathLike, key: str) -> Optional[int]:
    """The first line of a Kaldi file whose first field is ``key`` (for an error message)."""
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split(maxsplit=1)
            if fields and fields[0] == key:
                return line_no
    return None


def _c_sorted(items):
    return sorted(items, key=lambda s: s.encode("utf-8"))


def split_by_duration(utt2spk: Mapping[str, str], utt2dur: Mapping[str, float], short_min: float = 2.0,
                      short_max: float = 6.0, long_min: float = 6.0) -> Tuple[Dict[str, List[str]], Dict[str, List[str]]]:
    """Per-speaker lists of short and long utterances (C-sorted); utterances in between are ignored."""
    missing = [utt for utt in utt2spk if utt not in utt2dur]
    if missing:
        raise KeyError(f"{len(missing)} utterances have no duration, e.g. {missing[0]!r}")
    short: Dict[str, List[str]] = {}
    long: Dict[str, List[str]] = {}
    for utt in _c_sorted(utt2spk):
        duration = utt2dur[utt]
        if short_min < duration < short_max:
            short.setdefault(utt2spk[utt], []).append(utt)
        if duration > long_min:
            long.setdefault(utt2spk[utt], []).append(utt)
    return short, long


def make_calibration_trials(utt2spk: Mapping[str, str], utt2dur: Mapping[str, float], rounds: int = 5000,
                            seed: int = 777, short_min: float = 2.0, short_max: float = 6.0, long_min: float = 6.0,
                            allow_same_utterance: bool = False) -> List[Trial]:
    """Return ``6 * rounds`` trials ``(enroll, test, 'target'|'nontarget')``.

    Raises ValueError when fewer than two speakers have enough short and long
    utterances.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be positive, got {rounds}")
    short, long = split_by_duration(utt2spk, utt2dur, short_min, short_max, long_min)
    needed = 1 if allow_same_utterance else 2
    speakers = [spk for spk in _c_sorted(set(short) & set(long))
                if len(short[spk]) >= needed and len(long[spk]) >= needed]
    if len(speakers) < 2:
        raise ValueError(f"only {len(speakers)} speakers have at least {needed} short ({short_min}-{short_max} s) "
                         f"and {needed} long (> {long_min} s) utterances; need 2 or more")
    logger.info("calibration trials from %d speakers (%d with short, %d with long utterances)",
                len(speakers), len(short), len(long))
    rng = random.Random(seed)

    def target_pair(utts: List[str]) -> Tuple[str, str]:
        if allow_same_utterance:
            return rng.choice(utts), rng.choice(utts)
        first, second = rng.sample(utts, 2)
        return first, second

    trials: List[Trial] = []
    for _ in range(rounds):
        index = rng.randrange(len(speakers))
        speaker = speakers[index]
        other = speakers[(index + 1 + rng.randrange(len(speakers) - 1)) % len(speakers)]
        enroll, test = target_pair(short[speaker])
        trials.append((enroll, test, "target"))
        trials.append((enroll, rng.choice(short[other]), "nontarget"))
        enroll = rng.choice(short[speaker])
        trials.append((enroll, rng.choice(long[speaker]), "target"))
        trials.append((enroll, rng.choice(long[other]), "nontarget"))
        enroll, test = target_pair(long[speaker])
        trials.append((enroll, test, "target"))
        trials.append((enroll, rng.choice(long[other]), "nontarget"))
    return trials
