"""The official list files of VoxCeleb and CN-Celeb, turned into Kaldi files.

VoxCeleb1's trial lists (``veri_test2.txt``, ``list_test_all2.txt`` and
``list_test_hard2.txt``: the cleaned O, E and H lists) have one trial a line,
label first: ``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``
(1 = same speaker, 0 = different), with paths below VoxCeleb1's ``wav/``.

CN-Celeb's evaluation set (``CN-Celeb_flac/eval``) has ``test/*.flac``,
``enroll/<spk>-enroll.flac`` (each the concatenation of a speaker's enrollment
utterances) and three lists in ``eval/lists``: ``trials.lst``
(``id00800-enroll test/id00800-singing-01-001.wav 1``, label last),
``enroll.lst`` (``id00800-enroll enroll/id00800-enroll.wav``) and
``enroll.map`` (``id00800-enroll id00800/singing-01-002.wav ...``: the
utterances of ``data/`` the enrollment was made from). The lists may name
``.wav`` files where the release holds ``.flac``: audio is found by its path
without the extension.

Utterance ids are those of :func:`wespk.data.importers.import_folder`, so a
converted trial list names the utterances of a data dir made with
``python -m wespk.bin.prepare_data --layout folder``: ``id10270/x6uYqmx31kE/00001.wav``
becomes ``id10270-x6uYqmx31kE-00001``; a CN-Celeb test file
``test/id00800-singing-01-001.wav`` becomes ``id00800-singing-01-001``
(speaker ``id00800``).

CN-Celeb enrollment comes in two modes (:data:`ENROLL_MODES`):

* ``concat``: the enrollment id is an utterance, the released concatenated
  file ``eval/enroll/<id>.flac``;
* ``average``: the enrollment id is a "speaker" whose utterances are the ones
  ``enroll.map`` lists (ids ``<enroll_id>-<path below the speaker dir>``); its
  embedding is the mean of theirs (``python -m wespk.bin.speaker_mean
  --utt2spk <enroll dir>/utt2spk``).

Either way the trial list is the same: ``<enroll_id> <test_utt> target|nontarget``.
"""

import logging
import os
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from wespk.data.importers import (CorpusImportError, ImportReport, ImportedUtterance, check_audio,
                                  make_ids, write_data_dir)
from wespk.io.files import DataFileError, atomic_output

logger = logging.getLogger(__name__)

Trial = Tuple[str, str, str]

ENROLL_MODES = ("concat", "average")
AUDIO_EXTENSIONS = ("flac", "wav")
_LABELS = {"1": "target", "0": "nontarget"}


def _strip_extension(path: str) -> str:
    return os.path.splitext(path)[0]


def _label(value: str, path: str, line_no: int) -> str:
    try:
        return _LABELS[value]
    except KeyError:
        raise DataFileError(path, line_no, f"label must be 1 or 0, got {value!r}") from None


def _list_lines(path: str, num_fields: Optional[int], what: str) -> Iterable[Tuple[int, List[str]]]:
    """Non-empty lines of an official list as fields; wrong field counts name the line."""
    if not os.path.isfile(path):
        raise DataFileError(path, None, "file not found")
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if num_fields is not None and len(fields) != num_fields:
                raise DataFileError(path, line_no, f"expected {what}, got {line.strip()!r}")
            if num_fields is None and len(fields) < 2:
                raise DataFileError(path, line_no, f"expected {what}, got {line.strip()!r}")
            yield line_no, fields


# ------------------------------------------------------------- VoxCeleb ---
def voxceleb_utt_id(path: str, prefix: Optional[str] = None) -> str:
    """The data-dir utterance id of a VoxCeleb path ``<spk>/<video>/<utt>.wav``.

    The same id :func:`~wespk.data.importers.import_folder` gives the file
    when the folder holding the speaker directories is imported (with the
    same ``prefix``).
    """
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    if len(parts) < 2:
        raise ValueError(f"{path!r}: expected <speaker>/.../<utterance>")
    name = _strip_extension("/".join(parts[1:])).replace("/", "-")
    return make_ids(parts[0], name, prefix)[1]


def read_voxceleb_trials(path: str, prefix: Optional[str] = None) -> List[Trial]:
    """Trials of an official VoxCeleb1 list (``label enroll test``), in file order."""
    trials = []
    for line_no, (label, enroll, test) in _list_lines(path, 3, "'1|0 enroll_path test_path'"):
        label = _label(label, path, line_no)  # first: a label-last line is reported as such
        try:
            trials.append((voxceleb_utt_id(enroll, prefix), voxceleb_utt_id(test, prefix), label))
        except ValueError as e:
            if isinstance(e, DataFileError):
                raise
            raise DataFileError(path, line_no, str(e)) from None
    if not trials:
        raise DataFileError(path, None, "no trials")
    return trials


# ------------------------------------------------------------- CN-Celeb ---
def cnceleb_utt_id(path: str) -> str:
    """The utterance id of a CN-Celeb evaluation file: its name without extension."""
    name = _strip_extension(os.path.basename(path.replace("\\", "/")))
    if not name:
        raise ValueError(f"{path!r}: no file name")
    return name


def cnceleb_speaker(utt_id: str) -> str:
    """The speaker of a CN-Celeb evaluation id (``id00800-...`` -> ``id00800``)."""
    return utt_id.split("-", 1)[0]


def read_cnceleb_trials(path: str) -> List[Trial]:
    """Trials of CN-Celeb's ``trials.lst`` (``enroll_id test_path label``), in file order."""
    trials = []
    for line_no, (enroll, test, label) in _list_lines(path, 3, "'enroll_id test_path 1|0'"):
        try:
            trials.append((enroll, cnceleb_utt_id(test), _label(label, path, line_no)))
        except ValueError as e:
            if isinstance(e, DataFileError):
                raise
            raise DataFileError(path, line_no, str(e)) from None
    if not trials:
        raise DataFileError(path, None, "no trials")
    return trials


def read_enroll_list(path: str) -> "OrderedDict[str, str]":
    """``enroll.lst``: enrollment id -> its file, relative to ``eval/``."""
    table: "OrderedDict[str, str]" = OrderedDict()
    for line_no, (enroll, rel) in _list_lines(path, 2, "'enroll_id enroll_path'"):
        if enroll in table:
            raise DataFileError(path, line_no, f"duplicate enrollment id {enroll!r}")
        table[enroll] = rel
    return table


def read_enroll_map(path: str) -> "OrderedDict[str, List[str]]":
    """``enroll.map``: enrollment id -> its utterances, relative to ``data/``."""
    table: "OrderedDict[str, List[str]]" = OrderedDict()
    for line_no, fields in _list_lines(path, None, "'enroll_id utt_path [utt_path ...]'"):
        if fields[0] in table:
            raise DataFileError(path, line_no, f"duplicate enrollment id {fields[0]!r}")
        table[fields[0]] = fields[1:]
    return table


def locate_audio(root: str, rel: str, extensions: Sequence[str] = AUDIO_EXTENSIONS) -> Optional[str]:
    """The file ``root/rel``, or the file with the same path and another audio
    extension (the lists say ``.wav``, the release has ``.flac``); None if absent."""
    path = os.path.join(root, rel)
    if os.path.isfile(path):
        return os.path.abspath(path)
    stem = _strip_extension(path)
    for ext in extensions:
        candidate = f"{stem}.{ext}"
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    return None


def cnceleb_test_utterances(eval_dir: str,
                            extensions: Sequence[str] = AUDIO_EXTENSIONS) -> List[ImportedUtterance]:
    """The test utterances ``eval_dir/test/*.<ext>``, speaker from the name."""
    test_dir = os.path.join(eval_dir, "test")
    if not os.path.isdir(test_dir):
        raise CorpusImportError(f"{test_dir}: not a directory")
    suffixes = tuple("." + e for e in extensions)
    found = []
    for name in sorted(os.listdir(test_dir)):
        if name.lower().endswith(suffixes):
            utt = cnceleb_utt_id(name)
            path = os.path.join(test_dir, name)
            found.append(ImportedUtterance(utt=utt, spk=cnceleb_speaker(utt), path=os.path.abspath(path),
                                           origin=path))
    if not found:
        raise CorpusImportError(f"{test_dir}: no audio files ({', '.join(suffixes)})")
    return found


def cnceleb_enroll_utterances(cnceleb_root: str, enroll_mode: str) -> List[ImportedUtterance]:
    """The enrollment audio of ``cnceleb_root`` (``CN-Celeb_flac``) for ``enroll_mode``.

    ``concat``: one utterance per ``enroll.lst`` line, id = the enrollment id,
    speaker = the CN-Celeb speaker. ``average``: the utterances of
    ``enroll.map``, speaker = the enrollment id. A listed file that does not
    exist is an error naming it.
    """
    if enroll_mode not in ENROLL_MODES:
        raise ValueError(f"enroll_mode must be one of {ENROLL_MODES}, got {enroll_mode!r}")
    eval_dir = os.path.join(cnceleb_root, "eval")
    found: List[ImportedUtterance] = []
    missing: List[str] = []
    if enroll_mode == "concat":
        list_path = os.path.join(eval_dir, "lists", "enroll.lst")
        for enroll, rel in read_enroll_list(list_path).items():
            path = locate_audio(eval_dir, rel)
            if path is None:
                missing.append(os.path.join(eval_dir, rel))
                continue
            found.append(ImportedUtterance(utt=enroll, spk=cnceleb_speaker(enroll), path=path,
                                           origin=f"{list_path}: {rel}"))
    else:
        list_path = os.path.join(eval_dir, "lists", "enroll.map")
        data_dir = os.path.join(cnceleb_root, "data")
        for enroll, rels in read_enroll_map(list_path).items():
            for rel in rels:
                path = locate_audio(data_dir, rel)
                if path is None:
                    missing.append(os.path.join(data_dir, rel))
                    continue
                # <enroll_id>-<path below the speaker dir>: starts with its "speaker", the enrollment id
                parts = _strip_extension(rel.replace("\\", "/")).split("/")
                name = "-".join(parts[1:] if len(parts) > 1 else parts)
                found.append(ImportedUtterance(utt=f"{enroll}-{name}", spk=enroll, path=path,
                                               origin=f"{list_path}: {rel}"))
    if missing:
        raise CorpusImportError(f"{list_path}: {len(missing)} listed file(s) not found, e.g. "
                                f"{', '.join(missing[:3])}")
    if not found:
        raise CorpusImportError(f"{list_path}: no enrollment audio listed")
    return found


def check_trial_keys(trials: Sequence[Trial], enroll_keys: Set[str], test_keys: Set[str],
                     source: str) -> None:
    """Raise ``ValueError`` naming the first unknown ids when a trial names an
    enrollment or test id that is not among the given keys."""
    unknown_enroll = sorted({t[0] for t in trials} - enroll_keys)
    unknown_test = sorted({t[1] for t in trials} - test_keys)
    problems = []
    if unknown_enroll:
        problems.append(f"{len(unknown_enroll)} enrollment id(s) not found, e.g. {', '.join(unknown_enroll[:3])}")
    if unknown_test:
        problems.append(f"{len(unknown_test)} test id(s) not found, e.g. {', '.join(unknown_test[:3])}")
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))


def write_trials(path: str, trials: Iterable[Trial]) -> int:
    """Write ``enroll test label`` lines (atomically); returns the count."""
    count = 0
    with atomic_output(path) as f:
        for enroll, test, label in trials:
            f.write(f"{enroll} {test} {label}\n")
            count += 1
    return count


def _import(utterances: List[ImportedUtterance], data_dir: str, num_threads: int,
            strict: bool) -> ImportReport:
    kept, dropped = check_audio(utterances, num_threads=num_threads, strict=strict)
    for origin, reason in dropped[:20]:
        logger.warning("dropped %s: %s", origin, reason)
    report = write_data_dir(kept, data_dir)
    report.dropped = dropped
    return report


def prepare_cnceleb_eval(cnceleb_root: str, test_dir: str, enroll_dir: str, trials_path: str,
                         enroll_mode: str = "concat", num_threads: int = 8,
                         strict: bool = True) -> Tuple[ImportReport, ImportReport, int]:
    """Write CN-Celeb's evaluation set as Kaldi files.

    ``test_dir`` gets the data dir of ``eval/test``, ``enroll_dir`` that of
    the enrollment audio for ``enroll_mode`` (see the module docstring) and
    ``trials_path`` the trial list ``enroll_id test_utt target|nontarget``
    converted from ``eval/lists/trials.lst``. Every trial's ids must exist
    in the written dirs (else ``ValueError``). Returns the two import reports
    and the number of trials.
    """
    eval_dir = os.path.join(cnceleb_root, "eval")
    trials = read_cnceleb_trials(os.path.join(eval_dir, "lists", "trials.lst"))
    test_report = _import(cnceleb_test_utterances(eval_dir), test_dir, num_threads, strict)
    enroll_report = _import(cnceleb_enroll_utterances(cnceleb_root, enroll_mode), enroll_dir,
                            num_threads, strict)
    test_keys = _keys(os.path.join(test_dir, "utt2spk"), field=0)
    enroll_keys = _keys(os.path.join(enroll_dir, "utt2spk"), field=0 if enroll_mode == "concat" else 1)
    check_trial_keys(trials, enroll_keys, test_keys, os.path.join(eval_dir, "lists", "trials.lst"))
    os.makedirs(os.path.dirname(os.path.abspath(trials_path)), exist_ok=True)
    count = write_trials(trials_path, trials)
    return test_report, enroll_report, count


def _keys(path: str, field: int) -> Set[str]:
    with open(path, encoding="utf-8") as f:
        return {line.split()[field] for line in f if line.strip()}


def read_keys(paths: Sequence[str]) -> Set[str]:
    """The first fields of the lines of Kaldi files (utt2spk, spk2utt, wav.scp ...)."""
    keys: Set[str] = set()
    for path in paths:
        if not os.path.isfile(path):
            raise DataFileError(path, None, "file not found")
        keys |= _keys(path, field=0)
    return keys


def convert_trials(list_format: str, source: str, prefix: Optional[str] = None) -> List[Trial]:
    """Read an official trial list: ``list_format`` is ``voxceleb`` or ``cnceleb``."""
    if list_format == "voxceleb":
        return read_voxceleb_trials(source, prefix)
    if list_format == "cnceleb":
        if prefix:
            raise ValueError("prefix is not supported for CN-Celeb trial lists")
        return read_cnceleb_trials(source)
    raise ValueError(f"unknown trial list format {list_format!r}; expected voxceleb or cnceleb")


def trial_counts(trials: Sequence[Trial]) -> Dict[str, int]:
    """``{'target': n, 'nontarget': m}``."""
    counts = {"target": 0, "nontarget": 0}
    for _, _, label in trials:
        counts[label] += 1
    return counts
