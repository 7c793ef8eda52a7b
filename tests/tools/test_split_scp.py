"""tools/split_scp.pl: splitting a list into --nj parts, Kaldi semantics."""

from pathlib import Path


def write_lines(path, lines):
    Path(path).write_text("".join(line + "\n" for line in lines))


def read_lines(path):
    return Path(path).read_text().splitlines()


def test_split_into_contiguous_parts_first_parts_longer(tmp_path, run_tool):
    lines = [f"utt{i:02d} /data/utt{i:02d}.wav" for i in range(10)]
    write_lines(tmp_path / "wav.scp", lines)
    outputs = [tmp_path / f"wav.{job}.scp" for job in (1, 2, 3)]
    run_tool("split_scp.pl", tmp_path / "wav.scp", *outputs, check=True)
    parts = [read_lines(out) for out in outputs]
    assert [len(part) for part in parts] == [4, 3, 3]
    assert sum(parts, []) == lines


def test_one_job_of_several(tmp_path, run_tool):
    lines = [f"utt{i:02d} x" for i in range(7)]
    write_lines(tmp_path / "list", lines)
    zero_based = run_tool("split_scp.pl", "-j", "3", "1", tmp_path / "list", check=True).stdout
    assert zero_based.splitlines() == lines[3:5]
    one_based = run_tool("split_scp.pl", "-j", "3", "3", "--one-based", tmp_path / "list", check=True).stdout
    assert one_based.splitlines() == lines[5:]
    run_tool("split_scp.pl", "-j", "3", "0", tmp_path / "list", tmp_path / "part0", check=True)
    assert read_lines(tmp_path / "part0") == lines[:3]
    result = run_tool("split_scp.pl", "-j", "3", "3", tmp_path / "list")
    assert result.returncode != 0 and "out of range" in result.stderr


def test_utt2spk_keeps_speakers_together(tmp_path, run_tool):
    # Speakers with 5, 1, 1, 4, 2, 3 utterances.
    counts = {"spkA": 5, "spkB": 1, "spkC": 1, "spkD": 4, "spkE": 2, "spkF": 3}
    utt2spk = [f"{spk}-{i} {spk}" for spk, n in counts.items() for i in range(n)]
    write_lines(tmp_path / "utt2spk", utt2spk)
    outputs = [tmp_path / f"utt2spk.{job}" for job in (1, 2, 3)]
    run_tool("split_scp.pl", "--utt2spk=" + str(tmp_path / "utt2spk"), tmp_path / "utt2spk", *outputs,
             check=True)
    parts = [read_lines(out) for out in outputs]
    assert sum(parts, []) == utt2spk
    speaker_sets = [{line.split()[1] for line in part} for part in parts]
    assert all(speaker_sets)
    assert not (speaker_sets[0] & speaker_sets[1] or speaker_sets[1] & speaker_sets[2]
                or speaker_sets[0] & speaker_sets[2])
    # 16 lines in 3 parts along speaker boundaries: no cut has a largest part
    # below 6 lines (e.g. 5+1 / 1+4 / 2+3).
    assert max(len(part) for part in parts) == 6


def test_too_many_parts_is_an_error(tmp_path, run_tool):
    write_lines(tmp_path / "list", ["a 1", "b 2"])
    result = run_tool("split_scp.pl", tmp_path / "list", *(tmp_path / f"o{i}" for i in range(3)))
    assert result.returncode != 0 and "only 2 lines" in result.stderr and "--nj" in result.stderr
    write_lines(tmp_path / "utt2spk", ["a s", "b s"])
    result = run_tool("split_scp.pl", "--utt2spk", tmp_path / "utt2spk", tmp_path / "list",
                      tmp_path / "o1", tmp_path / "o2")
    assert result.returncode != 0 and "only 1 speakers" in result.stderr
