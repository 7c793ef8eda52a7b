"""tools/make_raw_list.py and tools/make_shard_list.py on real recordings."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile


def write_lines(path, lines):
    Path(path).write_text("".join(line + "\n" for line in lines))


def read_lines(path):
    return Path(path).read_text().splitlines()


def read_json_lines(path):
    return [json.loads(line) for line in read_lines(path)]


def add_segments(directory, recordings):
    """Make directory's utterances two segments of each recording."""
    segments, utt2spk = [], []
    for rec, spk, _ in recordings:
        for index, (start, end) in enumerate([(0.25, 1.25), (1.5, 2.0)]):
            segments.append(f"{rec}-seg{index} {rec} {start} {end}")
            utt2spk.append(f"{rec}-seg{index} {spk}")
    write_lines(directory / "segments", segments)
    write_lines(directory / "utt2spk", utt2spk)


# --- make_raw_list.py ------------------------------------------------------------

def test_raw_list_from_data_dir(data_dir, recordings, run_tool, tmp_path):
    durations = {utt: soundfile.info(str(path)).duration for utt, _, path in recordings}
    write_lines(data_dir / "utt2dur", [f"{utt} {durations[utt]}" for utt, _, _ in recordings])
    raw_list = tmp_path / "lists" / "raw.list"
    run_tool("make_raw_list.py", data_dir, raw_list, check=True)
    assert read_json_lines(raw_list) == [
        {"key": utt, "wav": str(path), "spk": spk, "duration": durations[utt]}
        for utt, spk, path in recordings]
    assert sorted(p.name for p in raw_list.parent.iterdir()) == ["raw.list"]


def test_raw_list_wespeaker_form_and_segments(data_dir, recordings, run_tool, tmp_path):
    run_tool("make_raw_list.py", data_dir / "wav.scp", data_dir / "utt2spk", tmp_path / "a.list", check=True)
    run_tool("make_raw_list.py", data_dir, tmp_path / "b.list", check=True)
    assert (tmp_path / "a.list").read_text() == (tmp_path / "b.list").read_text()
    assert read_json_lines(tmp_path / "a.list")[0] == {
        "key": recordings[0][0], "wav": str(recordings[0][2]), "spk": recordings[0][1]}

    add_segments(data_dir, recordings)
    run_tool("make_raw_list.py", "--segments", data_dir / "segments", data_dir / "wav.scp",
             data_dir / "utt2spk", tmp_path / "c.list", check=True)
    run_tool("make_raw_list.py", data_dir, tmp_path / "d.list", check=True)
    assert (tmp_path / "c.list").read_text() == (tmp_path / "d.list").read_text()
    entries = read_json_lines(tmp_path / "c.list")
    assert len(entries) == 12
    assert entries[1] == {"key": f"{recordings[0][0]}-seg1", "wav": str(recordings[0][2]),
                          "spk": recordings[0][1], "start": 1.5, "end": 2.0}


def test_raw_list_errors_name_file_and_line(data_dir, recordings, run_tool, tmp_path):
    write_lines(data_dir / "wav.scp", [l for l in read_lines(data_dir / "wav.scp")
                                       if not l.startswith(recordings[3][0] + " ")])
    result = run_tool("make_raw_list.py", data_dir, tmp_path / "raw.list")
    assert result.returncode == 1
    assert f"{data_dir}/utt2spk:4: utterance '{recordings[3][0]}' is not in wav.scp" in result.stderr
    assert not (tmp_path / "raw.list").exists()

    write_lines(data_dir / "utt2spk", ["a spk", "b spk extra"])
    result = run_tool("make_raw_list.py", data_dir, tmp_path / "raw.list")
    assert result.returncode == 1 and \
        f"{data_dir}/utt2spk:2: malformed line, expected 'utterance speaker': 'b spk extra'" in result.stderr

    result = run_tool("make_raw_list.py", data_dir)
    assert result.returncode == 2 and "usage: make_raw_list.py DATA_DIR RAW_LIST" in result.stderr


# --- make_shard_list.py ----------------------------------------------------------

def shard_members(shard):
    with tarfile.open(shard) as tar:
        return [(member.name, tar.extractfile(member).read()) for member in tar.getmembers()]


def samples_of(data):
    return soundfile.read(io.BytesIO(data), dtype="int16")


@pytest.fixture
def mixed_dir(data_dir, recordings, tmp_path):
    """Recording 1 as FLAC and recording 2 through a pipe command."""
    flac = tmp_path / "audio.flac"
    samples, rate = soundfile.read(recordings[1][2], dtype="int16")
    soundfile.write(flac, samples, rate, format="FLAC", subtype="PCM_16")
    lines = read_lines(data_dir / "wav.scp")
    lines[1] = f"{recordings[1][0]} {flac}"
    lines[2] = f"{recordings[2][0]} cat {recordings[2][2]} |"
    write_lines(data_dir / "wav.scp", lines)
    return data_dir


def test_shards_hold_speaker_and_audio(mixed_dir, recordings, run_tool, tmp_path):
    shard_dir = tmp_path / "shards"
    shard_list = tmp_path / "shard.list"
    run_tool("make_shard_list.py", "--num_utts_per_shard", "4", "--num-threads", "2",
             mixed_dir, shard_dir, shard_list, check=True)
    assert read_lines(shard_list) == [str(shard_dir / "shards_000000.tar"), str(shard_dir / "shards_000001.tar")]
    assert sorted(p.name for p in shard_dir.iterdir()) == ["shards_000000.tar", "shards_000001.tar"]

    members = shard_members(shard_dir / "shards_000000.tar") + shard_members(shard_dir / "shards_000001.tar")
    utts = [utt for utt, _, _ in recordings]
    assert [name for name, _ in members] == [
        name for utt in utts for name in (f"{utt}.spk", f"{utt}.flac" if utt == utts[1] else f"{utt}.wav")]
    content = dict(members)
    for utt, spk, path in recordings:
        assert content[f"{utt}.spk"] == spk.encode()
    # Plain WAV and FLAC files are copied byte for byte.
    assert content[f"{utts[0]}.wav"] == recordings[0][2].read_bytes()
    assert content[f"{utts[1]}.flac"] == (tmp_path / "audio.flac").read_bytes()
    # A command's output is decoded and stored as 16-bit PCM WAV.
    decoded, rate = samples_of(content[f"{utts[2]}.wav"])
    expected, expected_rate = soundfile.read(recordings[2][2], dtype="int16")
    assert rate == expected_rate and np.array_equal(decoded, expected)
    assert soundfile.info(io.BytesIO(content[f"{utts[2]}.wav"])).subtype == "PCM_16"


def test_shards_cut_segments(data_dir, recordings, run_tool, tmp_path):
    add_segments(data_dir, recordings[:2])
    lines = read_lines(data_dir / "wav.scp")
    lines[1] = f"{recordings[1][0]} cat {recordings[1][2]} |"
    write_lines(data_dir / "wav.scp", lines)
    run_tool("make_shard_list.py", data_dir, tmp_path / "shards", tmp_path / "shard.list", check=True)
    content = dict(shard_members(tmp_path / "shards" / "shards_000000.tar"))
    assert len(content) == 8
    for rec, _, path in recordings[:2]:
        full, rate = soundfile.read(path, dtype="int16")
        for index, (start, end) in enumerate([(0.25, 1.25), (1.5, 2.0)]):
            segment, segment_rate = samples_of(content[f"{rec}-seg{index}.wav"])
            assert segment_rate == rate
            assert np.array_equal(segment, full[round(start * rate):round(end * rate)])


def test_shuffle_is_reproducible_and_stale_shards_go(data_dir, recordings, run_tool, tmp_path):
    def names(shard_dir):
        return [name for shard in sorted(shard_dir.iterdir()) for name, _ in shard_members(shard)]

    for run in ("a", "b"):
        run_tool("make_shard_list.py", "--num_utts_per_shard", "2", "--shuffle", "--seed", "3",
                 data_dir, tmp_path / run, tmp_path / f"{run}.list", check=True)
    assert names(tmp_path / "a") == names(tmp_path / "b")
    for shard in ("shards_000000.tar", "shards_000001.tar", "shards_000002.tar"):
        assert (tmp_path / "a" / shard).read_bytes() == (tmp_path / "b" / shard).read_bytes()
    keys = [name[:-4] for name in names(tmp_path / "a") if name.endswith(".spk")]
    utts = [utt for utt, _, _ in recordings]
    assert sorted(keys) == utts and keys != utts

    result = run_tool("make_shard_list.py", "--num_utts_per_shard", "5", data_dir, tmp_path / "a",
                      tmp_path / "a.list", check=True)
    assert "removed 1 shards of an earlier run" in result.stderr
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["shards_000000.tar", "shards_000001.tar"]
    assert len(read_lines(tmp_path / "a.list")) == 2


def test_shard_error_names_utterance_and_file(data_dir, recordings, run_tool, tmp_path):
    lines = read_lines(data_dir / "wav.scp")
    lines[4] = f"{recordings[4][0]} {tmp_path}/missing.wav"
    write_lines(data_dir / "wav.scp", lines)
    result = run_tool("make_shard_list.py", "--num_utts_per_shard", "2", "--num_threads", "2",
                      data_dir, tmp_path / "shards", tmp_path / "shard.list")
    assert result.returncode == 1
    assert f"utterance '{recordings[4][0]}' ('{tmp_path}/missing.wav')" in result.stderr
    assert not (tmp_path / "shard.list").exists()
    assert not [p for p in (tmp_path / "shards").iterdir() if ".tmp" in p.name]
