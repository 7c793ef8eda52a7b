"""One segment rule, 0 <= start < end, held by every reader of segments: the shell validator
and fixer, the list and duration tools, and wespk's data-dir reader and validator. A
segment with end <= 0 (Kaldi's old "to the end of the recording") is an error everywhere."""

from pathlib import Path

import pytest

from wespk.data.data_dir import read_data_dir, validate_data_dir
from wespk.io.files import DataFileError

# (start, end, the problem every tool names)
BAD_SEGMENTS = [("0", "-1", "end -1 <= start 0"), ("0.5", "0", "end 0 <= start 0.5"),
                ("1.25", "1.25", "end 1.25 <= start 1.25"), ("-0.5", "1", "start -0.5 < 0")]


def write_lines(path, lines):
    Path(path).write_text("".join(line + "\n" for line in lines))


def segmented_dir(data_dir, recordings, start, end):
    """Each recording cut into one good segment, the last one into a bad segment."""
    segments, utt2spk, spk2utt = [], [], {}
    for index, (rec, spk, _) in enumerate(recordings):
        bounds = (start, end) if index == len(recordings) - 1 else ("0.25", "1.25")
        segments.append(f"{rec}-seg {rec} {bounds[0]} {bounds[1]}")
        utt2spk.append(f"{rec}-seg {spk}")
        spk2utt.setdefault(spk, []).append(f"{rec}-seg")
    write_lines(data_dir / "segments", segments)
    write_lines(data_dir / "utt2spk", utt2spk)
    write_lines(data_dir / "spk2utt", [" ".join([spk] + utts) for spk, utts in sorted(spk2utt.items())])
    return f"{data_dir}/segments:{len(recordings)}"


@pytest.mark.parametrize("start,end,problem", BAD_SEGMENTS)
def test_every_reader_rejects_the_same_segments(data_dir, recordings, run_tool, tmp_path, start, end, problem):
    where = segmented_dir(data_dir, recordings, start, end)
    message = f"{where}: {problem}"

    result = run_tool("validate_data_dir.sh", data_dir)
    assert result.returncode == 1 and message in result.stderr
    assert validate_data_dir(str(data_dir)) == [message]
    with pytest.raises(DataFileError) as error:
        read_data_dir(str(data_dir), need_spk=True)
    assert str(error.value) == message
    if (start, end) not in (("0", "-1"), ("-0.5", "1")):
        return  # the tools below read segments with the library; two cases show it

    result = run_tool("make_raw_list.py", data_dir, tmp_path / "raw.list")
    assert result.returncode == 1 and message in result.stderr and not (tmp_path / "raw.list").exists()
    result = run_tool("make_shard_list.py", data_dir, tmp_path / "shards", tmp_path / "shard.list")
    assert result.returncode == 1 and message in result.stderr and not (tmp_path / "shard.list").exists()
    result = run_tool("wav_to_duration.py", "--segments", data_dir / "segments", data_dir / "wav.scp",
                      tmp_path / "utt2dur")
    assert result.returncode == 1 and message in result.stderr and not (tmp_path / "utt2dur").exists()

    result = run_tool("fix_data_dir.sh", data_dir)
    assert result.returncode == 0, result.stderr
    bad_utt = f"{recordings[-1][0]}-seg"
    assert bad_utt not in (data_dir / "segments").read_text()
    assert validate_data_dir(str(data_dir)) == []
    assert [u.key for u in read_data_dir(str(data_dir), need_spk=True)] == \
        [f"{rec}-seg" for rec, _, _ in recordings[:-1]]


def test_good_segments_pass_everywhere(data_dir, recordings, run_tool, tmp_path):
    segmented_dir(data_dir, recordings, "1.5", "2.0")
    assert run_tool("validate_data_dir.sh", data_dir).returncode == 0
    assert validate_data_dir(str(data_dir)) == []
    run_tool("make_raw_list.py", data_dir, tmp_path / "raw.list", check=True)
    run_tool("wav_to_duration.py", "--segments", data_dir / "segments", data_dir / "wav.scp",
             tmp_path / "utt2dur", check=True)
    assert len(read_data_dir(str(data_dir), need_spk=True)) == len(recordings)
