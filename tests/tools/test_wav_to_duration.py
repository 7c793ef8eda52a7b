"""tools/wav_to_duration.py against soundfile on real recordings."""

from pathlib import Path

import soundfile


def write_lines(path, lines):
    Path(path).write_text("".join(line + "\n" for line in lines))


def read_utt2dur(path):
    return {key: float(value) for key, value in (line.split() for line in Path(path).read_text().splitlines())}


def true_duration(path):
    info = soundfile.info(str(path))
    return info.frames / info.samplerate


def test_durations_match_soundfile(data_dir, recordings, run_tool, tmp_path):
    lines = (data_dir / "wav.scp").read_text().splitlines()
    lines[3] = f"{recordings[3][0]} cat {recordings[3][2]} |"
    write_lines(data_dir / "wav.scp", lines)
    run_tool("wav_to_duration.py", data_dir / "wav.scp", data_dir / "utt2dur", check=True)
    durations = read_utt2dur(data_dir / "utt2dur")
    assert list(durations) == [utt for utt, _, _ in recordings]
    for utt, _, path in recordings:
        assert abs(durations[utt] - true_duration(path)) < 1e-6
    run_tool("wav_to_duration.py", "--nj", "2", data_dir / "wav.scp", tmp_path / "utt2dur.nj2", check=True)
    assert (tmp_path / "utt2dur.nj2").read_text() == (data_dir / "utt2dur").read_text()
    assert run_tool("validate_data_dir.sh", data_dir).returncode == 0


def test_segment_durations(data_dir, recordings, run_tool):
    rec0, rec1 = recordings[0][0], recordings[1][0]
    total0 = true_duration(recordings[0][2])
    write_lines(data_dir / "segments", [f"{rec0}-a {rec0} 0.5 1.75",
                                        f"{rec0}-b {rec0} 2.0 {total0 + 5:.2f}",
                                        f"{rec1}-a {rec1} 0 1"])
    result = run_tool("wav_to_duration.py", "--segments", data_dir / "segments", data_dir / "wav.scp",
                      data_dir / "utt2dur", check=True)
    assert "1 segments end after their recording" in result.stderr
    durations = read_utt2dur(data_dir / "utt2dur")
    assert list(durations) == [f"{rec0}-a", f"{rec0}-b", f"{rec1}-a"]
    assert durations[f"{rec0}-a"] == 1.25
    assert abs(durations[f"{rec0}-b"] - (total0 - 2.0)) < 1e-6
    assert durations[f"{rec1}-a"] == 1.0

    write_lines(data_dir / "segments", [f"{rec0}-a {rec0} {total0 + 1:.2f} {total0 + 2:.2f}"])
    result = run_tool("wav_to_duration.py", "--segments", data_dir / "segments", data_dir / "wav.scp",
                      data_dir / "utt2dur.new")
    assert result.returncode == 1
    assert f"{data_dir}/segments:1: segment '{rec0}-a' starts at" in result.stderr
    assert not (data_dir / "utt2dur.new").exists()


def test_errors_name_file_and_line(data_dir, recordings, run_tool, tmp_path):
    lines = (data_dir / "wav.scp").read_text().splitlines()
    lines[2] = f"{recordings[2][0]} {tmp_path}/missing.wav"
    lines[4] = f"{recordings[4][0]} false |"
    write_lines(data_dir / "wav.scp", lines)
    result = run_tool("wav_to_duration.py", "--nj", "2", data_dir / "wav.scp", tmp_path / "utt2dur")
    assert result.returncode == 1
    assert f"{data_dir}/wav.scp:3: cannot read the audio of '{recordings[2][0]}' ('{tmp_path}/missing.wav')" \
        in result.stderr
    assert f"{data_dir}/wav.scp:5: cannot read the audio of '{recordings[4][0]}' ('false |'): command 'false' " \
           "failed (1)" in result.stderr
    assert not (tmp_path / "utt2dur").exists()

    write_lines(data_dir / "wav.scp", lines[:1] + [recordings[1][0]])
    result = run_tool("wav_to_duration.py", data_dir / "wav.scp", tmp_path / "utt2dur")
    assert result.returncode == 1 and f"{data_dir}/wav.scp:2: malformed line, expected 'recording path | " \
        f"recording command |': '{recordings[1][0]}'" in result.stderr
