"""Kaldi data dirs: the one reader and the one validator.

A data dir is ``wav.scp`` (``recording path`` or ``recording command |``),
``utt2spk``, ``spk2utt`` and optionally ``segments``
(``utterance recording start end``, seconds), ``utt2dur``, ``feats.scp`` and
``trials``. :func:`read_data_dir` gives its utterances as
:class:`~wespk.data.records.Utterance` records; :func:`validate_data_dir`
lists every way it breaks the contract, with the messages of
``tools/validate_data_dir.sh`` (``DIR/FILE:LINE: problem``);
:func:`read_utterances` reads whatever extraction accepts (a data dir, a bare
``wav.scp``, a raw list).

One segment rule holds everywhere (this module, the shell validator and
``fix_data_dir.sh``, the tools): start and end are plain decimal numbers with
``0 <= start < end``. There is no "end <= 0 means the end of the recording":
such a line is an error.
"""

import json
import logging
import os
import re
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from wespk.data.records import Utterance
from wespk.io.audio import AudioRef
from wespk.io.files import DataFileError, KaldiFileProblem, KaldiLine, scan_kaldi_file

logger = logging.getLogger(__name__)

#: A number as the shell validator accepts it (no nan/inf, no hex).
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

WAV_SCP_FORMAT = "recording path | recording command |"


def is_number(text: str) -> bool:
    """Whether ``text`` is a number in the data-dir files' sense (the validator's rule)."""
    return bool(_NUMBER.match(text))


def segment_problem(start: str, end: str) -> Optional[str]:
    """What is wrong with a segment's ``start``/``end`` fields, or None (``0 <= start < end``)."""
    if not is_number(start) or not is_number(end):
        return f"start and end must be numbers: '{start}' '{end}'"
    if float(start) < 0:
        return f"start {start} < 0"
    if float(end) <= float(start):
        return f"end {end} <= start {start}"
    return None


def resolve_audio_path(value: str, base_dir: Optional[str]) -> str:
    """A list's audio value as a path to read: commands and absolute paths as written; a
    relative path as written when it exists from the current directory (Kaldi's convention),
    else relative to ``base_dir`` when that exists."""
    value = value.strip()
    if value.endswith("|") or os.path.isabs(value) or os.path.exists(value) or not base_dir:
        return value
    candidate = os.path.join(base_dir, value)
    return candidate if os.path.exists(candidate) else value


def _raise_first_fatal(problems: Sequence[KaldiFileProblem]) -> None:
    for problem in problems:
        if problem.fatal:
            raise problem.error()


def _wav_scp_problems(path: str, lines: Sequence[KaldiLine]) -> List[KaldiFileProblem]:
    return [KaldiFileProblem(path, line.line_no, "malformed line, expected 'recording path' or 'recording "
                                         f"command |': '{line.fields[0]} {line.value}'", True)
            for line in lines if not line.value.endswith("|") and len(line.fields) != 2]


def _segment_problems(path: str, lines: Sequence[KaldiLine], recordings: Dict[str, KaldiLine],
                      wav_scp: str) -> List[KaldiFileProblem]:
    problems = []
    name = os.path.basename(wav_scp)
    for line in lines:
        utt, recording, start, end = line.fields
        if recording not in recordings:
            problems.append(KaldiFileProblem(path, line.line_no, f"recording '{recording}' of '{utt}' is not in {name}", True))
        problem = segment_problem(start, end)
        if problem:
            problems.append(KaldiFileProblem(path, line.line_no, problem, True))
    return problems


def _duration_problems(path: str, lines: Sequence[KaldiLine]) -> List[KaldiFileProblem]:
    return [KaldiFileProblem(path, line.line_no, f"duration must be a positive number: '{line.fields[1]}'", True)
            for line in lines if not is_number(line.fields[1]) or float(line.fields[1]) <= 0]


def read_kaldi_utterances(wav_scp: str, utt2spk: Optional[str] = None, segments: Optional[str] = None,
                          utt2dur: Optional[str] = None, need_spk: bool = False,
                          base_dir: Optional[str] = None) -> List[Utterance]:
    """The utterances of ``wav.scp`` (or of ``segments`` over it), in file order.

    ``utt2spk`` gives speakers and ``utt2dur`` durations (else a segment's
    length). With ``need_spk`` every utterance must have a speaker and every
    ``utt2spk`` line audio. Relative audio paths: see :func:`resolve_audio_path`.
    Raises :class:`~wespk.io.files.DataFileError` naming the file and line
    for the first problem that makes the files unreadable (malformed lines,
    duplicate keys, bad segments or durations, unknown recordings).
    """
    recordings, wav_lines, problems = scan_kaldi_file(wav_scp, 2, None, WAV_SCP_FORMAT)
    problems += _wav_scp_problems(wav_scp, wav_lines)
    _raise_first_fatal(problems)
    speakers: Dict[str, KaldiLine] = {}
    if utt2spk is not None and (need_spk or os.path.isfile(utt2spk)):
        speakers, _, problems = scan_kaldi_file(utt2spk, 2, 2, "utterance speaker")
        _raise_first_fatal(problems)
    durations: Dict[str, KaldiLine] = {}
    if utt2dur is not None:
        durations, dur_lines, problems = scan_kaldi_file(utt2dur, 2, 2, "utterance duration")
        _raise_first_fatal(problems + _duration_problems(utt2dur, dur_lines))

    audio_file = segments if segments is not None else wav_scp
    utterances: List[Utterance] = []
    if segments is not None:
        _, seg_lines, problems = scan_kaldi_file(segments, 4, 4, "utterance recording start end")
        _raise_first_fatal(problems + _segment_problems(segments, seg_lines, recordings, wav_scp))
        items = [(line, recordings[line.fields[1]].value, float(line.fields[2]), float(line.fields[3]))
                 for line in seg_lines]
    else:
        items = [(line, line.value, None, None) for line in wav_lines]
    for line, value, start, end in items:
        key = line.fields[0]
        speaker = speakers[key].fields[1] if key in speakers else None
        if need_spk and speaker is None:
            raise DataFileError(audio_file, line.line_no, f"utterance '{key}' is not in utt2spk "
                                                          "(run tools/fix_data_dir.sh)")
        duration = float(durations[key].fields[1]) if key in durations else None
        path = resolve_audio_path(value, base_dir)
        utterances.append(Utterance.from_wav_scp(key, path, speaker, start, end, duration))
    if need_spk:
        have_audio = {u.key for u in utterances}
        for key, line in speakers.items():
            if key not in have_audio:
                raise DataFileError(utt2spk, line.line_no, f"utterance '{key}' is not in "
                                                           f"{os.path.basename(audio_file)} "
                                                           "(run tools/fix_data_dir.sh)")
    return utterances


def data_dir_files(data_dir: str) -> Tuple[str, str, Optional[str], Optional[str]]:
    """``(wav.scp, utt2spk, segments, utt2dur)`` of a data dir; the optional ones None when absent."""
    data_dir = data_dir.rstrip("/") or "/"

    def optional(name: str) -> Optional[str]:
        path = os.path.join(data_dir, name)
        return path if os.path.isfile(path) else None
    return (os.path.join(data_dir, "wav.scp"), os.path.join(data_dir, "utt2spk"),
            optional("segments"), optional("utt2dur"))


def read_data_dir(path: str, need_spk: bool = False) -> List[Utterance]:
    """The utterances of a Kaldi data dir (``wav.scp`` [+ ``segments``, ``utt2spk``, ``utt2dur``]).

    See :func:`read_kaldi_utterances`; relative audio paths may be relative
    to the current directory or to the data dir.
    """
    if not os.path.isdir(path):
        raise DataFileError(path, None, "not a directory")
    wav_scp, utt2spk, segments, utt2dur = data_dir_files(path)
    return read_kaldi_utterances(wav_scp, utt2spk, segments, utt2dur, need_spk=need_spk,
                                 base_dir=path.rstrip("/") or "/")


def audio_by_speaker(path: str) -> Dict[str, List[AudioRef]]:
    """Speaker -> the audio of their utterances (segments included), for a data dir; speakers in
    C-locale order, utterances in file order."""
    grouped: Dict[str, List[AudioRef]] = {}
    for utt in read_data_dir(path, need_spk=True):
        grouped.setdefault(utt.speaker, []).append(utt.audio)
    return dict(sorted(grouped.items(), key=lambda item: item[0].encode("utf-8")))


# ------------------------------------------------------------ raw lists ---
def _first_content_line(path: str) -> Optional[str]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                return line.strip()
    return None


def is_json_lines(path: str) -> bool:
    """Whether a list file is JSON lines (its first non-empty line starts with ``{``)."""
    first = _first_content_line(path)
    return first is not None and first.startswith("{")


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


def _seconds(obj: dict, name: str, path: str, line_no: int) -> Optional[float]:
    value = obj.get(name)
    if value is None:
        return None
    text = str(value)
    if isinstance(value, bool) or not is_number(text):
        raise DataFileError(path, line_no, f"{name} must be a number, got {value!r}")
    return float(text)


def read_raw_list(path: str, need_spk: bool = False) -> List[Utterance]:
    """Utterances of a raw list: JSON lines ``{"key", "wav", "spk"[, "start", "end", "duration"]}``
    (the format of ``tools/make_raw_list.py``); ``start``/``end`` follow the segment rule."""
    base_dir = os.path.dirname(path) or "."
    utterances = []
    required = ("key", "wav", "spk") if need_spk else ("key", "wav")
    for line_no, obj in read_json_lines(path, required):
        start = _seconds(obj, "start", path, line_no)
        end = _seconds(obj, "end", path, line_no)
        duration = _seconds(obj, "duration", path, line_no)
        if start is not None or end is not None:
            if start is None or end is None:
                raise DataFileError(path, line_no, "a segment needs both start and end")
            problem = segment_problem(str(obj["start"]), str(obj["end"]))
            if problem:
                raise DataFileError(path, line_no, problem)
        if duration is not None and duration <= 0:
            raise DataFileError(path, line_no, f"duration must be a positive number: '{obj['duration']}'")
        spk = obj.get("spk")
        utterances.append(Utterance.from_wav_scp(str(obj["key"]), resolve_audio_path(str(obj["wav"]), base_dir),
                                                 None if spk is None else str(spk), start, end, duration))
    return utterances


def read_utterances(path: str, need_spk: bool = False) -> List[Utterance]:
    """Utterances of a data dir, of a ``wav.scp`` (with the files beside it when it is named
    ``wav.scp``), of another ``key path`` scp file, or of a raw list (JSON lines)."""
    if os.path.isdir(path):
        return read_data_dir(path, need_spk)
    if not os.path.isfile(path):
        raise DataFileError(path, None, "file not found")
    if is_json_lines(path):
        return read_raw_list(path, need_spk)
    if os.path.basename(path) == "wav.scp":
        return read_data_dir(os.path.dirname(path) or ".", need_spk)
    if need_spk:
        raise DataFileError(path, None, "not a JSON-lines raw list; a Kaldi list must be a data dir "
                                        "or its wav.scp")
    return read_kaldi_utterances(path, base_dir=os.path.dirname(path) or ".")


# ------------------------------------------------------------ validation ---
def validate_data_dir(path: str, check_wav: bool = True) -> List[str]:
    """Every way the data dir at ``path`` breaks the data-dir contract, as
    ``DIR/FILE[:LINE]: problem`` lines; an empty list when it is valid.

    The checks and messages are those of ``tools/validate_data_dir.sh`` (see
    its header), which prints at most a few of them per file.
    """
    data_dir = path.rstrip("/") or "/"
    if not os.path.isdir(data_dir):
        return [f"{data_dir}: not a directory"]

    def at(name: str) -> str:
        return os.path.join(data_dir, name)

    missing = [KaldiFileProblem(at(name), None, "missing (required file)", True)
               for name in ("wav.scp", "utt2spk", "spk2utt") if not os.path.isfile(at(name))]
    if missing:
        return [str(p) for p in missing]
    problems: List[KaldiFileProblem] = []
    wav_by_key, wav_lines, found = scan_kaldi_file(at("wav.scp"), 2, None, WAV_SCP_FORMAT)
    problems += found
    utt2spk, utt2spk_lines, found = scan_kaldi_file(at("utt2spk"), 2, 2, "utterance speaker")
    problems += found
    _, spk2utt_lines, found = scan_kaldi_file(at("spk2utt"), 2, None, "speaker utterance1 utterance2 ...")
    problems += found
    speaker_of = {key: line.fields[1] for key, line in utt2spk.items()}

    for line in wav_lines:
        value = line.value
        if value.endswith("|"):
            continue
        if len(line.fields) != 2:
            problems += _wav_scp_problems(at("wav.scp"), [line])
            continue
        if check_wav and not os.path.isfile(value):
            archive = re.match(r"^(.+):\d+$", value)
            if not (archive and os.path.isfile(archive.group(1))):
                problems.append(KaldiFileProblem(at("wav.scp"), line.line_no, f"audio file '{value}' does not exist", True))

    if os.path.isfile(at("segments")):
        audio_file = "segments"
        _, audio_lines, found = scan_kaldi_file(at("segments"), 4, 4, "utterance recording start end")
        problems += found
        for line in audio_lines:
            utt, recording, start, end = line.fields
            if recording not in wav_by_key:
                problems.append(KaldiFileProblem(at("segments"), line.line_no,
                                         f"recording '{recording}' of '{utt}' is not in wav.scp", True))
            problem = segment_problem(start, end)
            if problem:
                problems.append(KaldiFileProblem(at("segments"), line.line_no, problem, True))
    else:
        audio_file, audio_lines = "wav.scp", wav_lines

    has_audio = {line.fields[0] for line in audio_lines}
    for line in utt2spk_lines:
        if line.fields[0] not in has_audio:
            problems.append(KaldiFileProblem(at("utt2spk"), line.line_no,
                                     f"utterance '{line.fields[0]}' is not in {audio_file}", True))
    for line in audio_lines:
        if line.fields[0] not in speaker_of:
            problems.append(KaldiFileProblem(at(audio_file), line.line_no,
                                     f"utterance '{line.fields[0]}' is not in utt2spk", True))

    spk2utt_line_of: Dict[str, int] = {}
    for line in spk2utt_lines:
        speaker, utts = line.fields[0], line.fields[1:]
        for utt in utts:
            if utt in spk2utt_line_of:
                problems.append(KaldiFileProblem(at("spk2utt"), line.line_no, f"utterance '{utt}' is listed twice "
                                                                      f"(also on line {spk2utt_line_of[utt]})", True))
                continue
            spk2utt_line_of[utt] = line.line_no
            if utt not in speaker_of:
                problems.append(KaldiFileProblem(at("spk2utt"), line.line_no,
                                         f"utterance '{utt}' of speaker '{speaker}' is not in utt2spk", True))
            elif speaker_of[utt] != speaker:
                problems.append(KaldiFileProblem(at("spk2utt"), line.line_no,
                                         f"utterance '{utt}' is under speaker '{speaker}' but utt2spk "
                                         f"(line {utt2spk[utt].line_no}) says '{speaker_of[utt]}'", True))
    for line in utt2spk_lines:
        if line.fields[0] not in spk2utt_line_of:
            problems.append(KaldiFileProblem(at("utt2spk"), line.line_no, f"utterance '{line.fields[0]}' of speaker "
                                                                  f"'{line.fields[1]}' is missing from spk2utt", True))

    if os.path.isfile(at("utt2dur")):
        _, dur_lines, found = scan_kaldi_file(at("utt2dur"), 2, 2, "utterance duration")
        problems += found
        for line in dur_lines:
            problems += _duration_problems(at("utt2dur"), [line])
            if line.fields[0] not in speaker_of:
                problems.append(KaldiFileProblem(at("utt2dur"), line.line_no,
                                         f"utterance '{line.fields[0]}' is not in utt2spk", True))

    if os.path.isfile(at("feats.scp")):
        _, feat_lines, found = scan_kaldi_file(at("feats.scp"), 2, 2, "utterance rxfilename")
        problems += found
        for line in feat_lines:
            if line.fields[0] not in speaker_of:
                problems.append(KaldiFileProblem(at("feats.scp"), line.line_no,
                                         f"utterance '{line.fields[0]}' is not in utt2spk", True))

    if os.path.isfile(at("trials")):
        _, trial_lines, found = scan_kaldi_file(at("trials"), 3, 3, "enroll test target|nontarget", ordered=False)
        problems += found
        for line in trial_lines:
            enroll, test, label = line.fields
            if label not in ("target", "nontarget"):
                problems.append(KaldiFileProblem(at("trials"), line.line_no,
                                         f"label must be 'target' or 'nontarget', got '{label}'", True))
            for utt in (enroll, test):
                if utt not in speaker_of:
                    problems.append(KaldiFileProblem(at("trials"), line.line_no, f"utterance '{utt}' is not in utt2spk", True))
    return [str(p) for p in problems]
