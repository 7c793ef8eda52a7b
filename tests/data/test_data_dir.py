"""The one data-dir reader and validator (wespk.data.data_dir) on a real data dir: typed
utterances, segments, every list form extraction accepts, and the same verdicts and
messages as tools/validate_data_dir.sh."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from wespk.data.data_dir import (audio_by_speaker, read_data_dir, read_raw_list, read_utterances,
                                  validate_data_dir)
from wespk.data.records import Utterance
from wespk.data.shards import index_shard, write_shards
from wespk.io.audio import load_audio
from wespk.io.files import DataFileError

REPO = Path(__file__).resolve().parents[2]
VALIDATE = REPO / "tools" / "validate_data_dir.sh"


@pytest.fixture
def work_dir(data_dir, tmp_path):
    """A copy of the session's data dir (16 real utterances) that a test may break."""
    target = tmp_path / "data"
    shutil.copytree(data_dir, target, ignore=shutil.ignore_patterns("*.list"))
    return target


def lines(path):
    return Path(path).read_text().splitlines()


def write(path, text_lines):
    Path(path).write_text("".join(line + "\n" for line in text_lines))


def add_segments(directory, num_recordings=3):
    """Two segments of each of the first recordings; utt2spk, spk2utt follow; utt2dur goes."""
    wav = [line.split()[0] for line in lines(directory / "wav.scp")][:num_recordings]
    speaker = dict(line.split() for line in lines(directory / "utt2spk"))
    segments, utt2spk = [], []
    for rec in wav:
        for index, (start, end) in enumerate([(0.25, 1.25), (1.5, 2.0)]):
            segments.append(f"{rec}-{index} {rec} {start} {end}")
            utt2spk.append(f"{rec}-{index} {speaker[rec]}")
    write(directory / "segments", segments)
    write(directory / "utt2spk", utt2spk)
    spk2utt = {}
    for line in utt2spk:
        utt, spk = line.split()
        spk2utt.setdefault(spk, []).append(utt)
    write(directory / "spk2utt", [" ".join([spk] + utts) for spk, utts in sorted(spk2utt.items())])
    os.unlink(directory / "utt2dur")


def test_read_data_dir_gives_typed_utterances(work_dir):
    utts = read_data_dir(str(work_dir), need_spk=True)
    assert len(utts) == 16 and all(isinstance(u, Utterance) for u in utts)
    assert [u.key for u in utts] == [line.split()[0] for line in lines(work_dir / "wav.scp")]
    speaker = dict(line.split() for line in lines(work_dir / "utt2spk"))
    for u in utts:
        assert u.speaker == speaker[u.key]
        assert u.start is None and u.end is None
        assert abs(u.duration - soundfile.info(u.wav).duration) < 1e-3  # utt2dur, 4 decimals
    with pytest.raises(AttributeError):
        utts[0].speaker = "x"  # frozen: the pipeline shares records between workers


def test_segments_cut_the_recording(work_dir):
    add_segments(work_dir)
    utts = read_data_dir(str(work_dir), need_spk=True)
    assert len(utts) == 6
    first = utts[1]
    assert (first.start, first.end, first.duration) == (1.5, 2.0, 0.5)
    full, rate = soundfile.read(first.wav, dtype="float32")
    samples, got_rate = load_audio(first.audio)
    assert got_rate == rate
    np.testing.assert_array_equal(samples, full[int(1.5 * rate):int(2.0 * rate)])
    assert validate_data_dir(str(work_dir)) == []
    by_speaker = audio_by_speaker(str(work_dir))  # what babble noise is made of
    assert sum(len(refs) for refs in by_speaker.values()) == 6 and first.audio in by_speaker[first.speaker]


def test_read_utterances_takes_every_form_extraction_takes(work_dir, tmp_path):
    add_segments(work_dir)
    from_dir = read_utterances(str(work_dir))
    assert read_utterances(str(work_dir / "wav.scp")) == from_dir  # a wav.scp brings its segments
    bare = tmp_path / "test.scp"
    shutil.copyfile(work_dir / "wav.scp", bare)
    plain = read_utterances(str(bare))  # any other scp: recordings, no speakers
    assert [u.key for u in plain] == [line.split()[0] for line in lines(bare)]
    assert all(u.speaker is None and u.start is None for u in plain)
    with pytest.raises(DataFileError, match="not a JSON-lines raw list"):
        read_utterances(str(bare), need_spk=True)
    raw = tmp_path / "raw.list"
    write(raw, [json.dumps({"key": u.key, "wav": u.wav, "spk": u.speaker, "start": u.start, "end": u.end})
                for u in from_dir])
    assert read_utterances(str(raw)) == from_dir


def test_relative_paths_are_from_the_current_dir_or_the_data_dir(work_dir, monkeypatch):
    first = lines(work_dir / "wav.scp")[0].split()
    audio = work_dir / "audio.wav"
    shutil.copyfile(first[1], audio)
    write(work_dir / "wav.scp", [f"{first[0]} audio.wav"] + lines(work_dir / "wav.scp")[1:])
    monkeypatch.chdir(work_dir.parent)
    assert read_data_dir(str(work_dir))[0].wav == os.path.join(str(work_dir), "audio.wav")
    monkeypatch.chdir(work_dir)
    assert read_data_dir(str(work_dir))[0].wav == "audio.wav"  # Kaldi: relative to where you run


def test_reader_errors_name_file_and_line(work_dir):
    wav = lines(work_dir / "wav.scp")
    write(work_dir / "wav.scp", wav[:3] + [wav[1]] + wav[3:])
    with pytest.raises(DataFileError, match=rf"wav.scp:4: duplicate key '{wav[1].split()[0]}' \(first on line 2\)"):
        read_data_dir(str(work_dir))
    write(work_dir / "wav.scp", wav + [f"extra {wav[0].split()[1]}"])
    assert len(read_data_dir(str(work_dir))) == 17  # speakers are optional
    with pytest.raises(DataFileError, match=r"wav.scp:17: utterance 'extra' is not in utt2spk"):
        read_data_dir(str(work_dir), need_spk=True)
    write(work_dir / "wav.scp", wav[1:])
    with pytest.raises(DataFileError, match=rf"utt2spk:1: utterance '{wav[0].split()[0]}' is not in wav.scp"):
        read_data_dir(str(work_dir), need_spk=True)
    write(work_dir / "wav.scp", wav)
    write(work_dir / "utt2dur", ["x 0"] + lines(work_dir / "utt2dur")[1:])
    with pytest.raises(DataFileError, match=r"utt2dur:1: duration must be a positive number: '0'"):
        read_data_dir(str(work_dir))


def test_raw_list_segments_follow_the_rule(tmp_path):
    raw = tmp_path / "raw.list"
    for start, end, problem in [(0, -1, "end -1 <= start 0"), (1.0, 1.0, "end 1.0 <= start 1.0"),
                                (-0.5, 1, "start -0.5 < 0"), ("nan", 1, "start must be a number")]:
        write(raw, [json.dumps({"key": "a", "wav": "a.wav", "spk": "s", "start": start, "end": end})])
        with pytest.raises(DataFileError, match=rf"raw.list:1: {problem}"):
            read_raw_list(str(raw))


# --- the Python validator says what tools/validate_data_dir.sh says ------------------------

def shell_problems(directory, *flags):
    result = subprocess.run(["bash", str(VALIDATE), *flags, str(directory)], capture_output=True, text=True,
                            env={**os.environ, "LC_ALL": "C"})
    prefix = "validate_data_dir.sh: "
    problems = [line[len(prefix):] for line in result.stderr.splitlines()
                if line.startswith(prefix) and "is not a valid data directory" not in line
                and ": warning: " not in line]
    return result.returncode, problems


def _replace_line(name, index, text):
    def change(d):
        content = lines(d / name)
        content[index] = text(content[index]) if callable(text) else text
        write(d / name, content)
    return change


def _segments(*segment_lines):
    def change(d):
        add_segments(d)
        write(d / "segments", lines(d / "segments")[:-len(segment_lines)] + list(segment_lines))
    return change


def _rec(d, index=0):
    return lines(d / "wav.scp")[index].split()[0]


BREAKAGES = {
    "valid": lambda d: None,
    "segment end -1": lambda d: _segments(f"{_rec(d, 2)}-1 {_rec(d, 2)} 0 -1")(d),
    "segment end == start": lambda d: _segments(f"{_rec(d, 2)}-1 {_rec(d, 2)} 1.5 1.5")(d),
    "segment start < 0": lambda d: _segments(f"{_rec(d, 2)}-1 {_rec(d, 2)} -0.1 2")(d),
    "segment not a number": lambda d: _segments(f"{_rec(d, 2)}-1 {_rec(d, 2)} 0 inf")(d),
    "segment unknown recording": lambda d: _segments(f"{_rec(d, 2)}-1 nowhere 0 1")(d),
    "unsorted and duplicate": _replace_line("utt2spk", 3, lambda line: "a" + line),
    "duplicate wav key": lambda d: write(d / "wav.scp", lines(d / "wav.scp")[:2] + lines(d / "wav.scp")[1:]),
    "spk2utt disagrees": _replace_line("spk2utt", 0, lambda line: line + " stray"),
    "non-positive duration": _replace_line("utt2dur", 2, lambda line: line.split()[0] + " -3"),
    "missing audio": _replace_line("wav.scp", 5, lambda line: line.split()[0] + " /no/such.wav"),
    "malformed wav.scp": _replace_line("wav.scp", 5, lambda line: line + " extra"),
    "dos line ending": _replace_line("utt2spk", 1, lambda line: line + "\r"),
    "empty line": lambda d: write(d / "utt2dur", lines(d / "utt2dur")[:4] + [""] + lines(d / "utt2dur")[4:]),
    "leading whitespace": _replace_line("utt2dur", 1, lambda line: " " + line),
    "bad trials": lambda d: write(d / "trials", [f"{_rec(d, 0)} {_rec(d, 1)} target",
                                                 f"{_rec(d, 0)} ghost maybe"]),
    "missing spk2utt": lambda d: os.unlink(d / "spk2utt"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_python_and_shell_validators_agree(work_dir, breakage):
    BREAKAGES[breakage](work_dir)
    status, expected = shell_problems(work_dir)
    problems = validate_data_dir(str(work_dir))
    assert sorted(problems) == sorted(expected)
    assert (status == 0) == (breakage == "valid") == (problems == [])
    if breakage.startswith("segment"):
        with pytest.raises(DataFileError, match="segments:"):  # the reader applies the same rule
            read_data_dir(str(work_dir))


def test_no_wav_check_flag(work_dir):
    BREAKAGES["missing audio"](work_dir)
    assert validate_data_dir(str(work_dir), check_wav=False) == shell_problems(work_dir, "--no-wav-check")[1] == []


# --- shards: the one writer and the indexer ---------------------------------------------------

def test_shards_round_trip_segments_and_pipes(work_dir, tmp_path):
    add_segments(work_dir, num_recordings=2)
    wav = lines(work_dir / "wav.scp")
    rec, path = wav[1].split()
    write(work_dir / "wav.scp", [wav[0], f"{rec} cat {path} |"] + wav[2:])
    utts = read_data_dir(str(work_dir), need_spk=True)
    paths = write_shards(utts, str(tmp_path / "a"), num_utts_per_shard=3)
    again = write_shards(utts, str(tmp_path / "b"), num_utts_per_shard=3, num_threads=2)
    assert [os.path.basename(p) for p in paths] == ["shards_000000.tar", "shards_000001.tar"]
    assert [Path(p).read_bytes() for p in paths] == [Path(p).read_bytes() for p in again]  # deterministic
    indexed = [u for p in paths for u in index_shard(p)]
    assert [(u.key, u.speaker) for u in indexed] == [(u.key, u.speaker) for u in utts]
    for original, stored in zip(utts, indexed):
        expected, rate = load_audio(original.audio, dtype="int16")
        got, got_rate = load_audio(stored.audio, dtype="int16")
        assert got_rate == rate and np.array_equal(got, expected)
        assert stored.error is None and stored.num_samples == len(expected)
