"""The data-dir scripts of tools/: validate, fix, combine, subset, and the
perl helpers, run on data dirs made from real recordings."""

import os
import re
from pathlib import Path

import pytest
import soundfile


def write_lines(path, lines):
    Path(path).write_text("".join(line + "\n" for line in lines))


def read_lines(path):
    return Path(path).read_text().splitlines()


def edit_lines(path, edit):
    write_lines(path, edit(read_lines(path)))


def durations_of(recordings):
    return {utt: soundfile.info(str(path)).duration for utt, _, path in recordings}


# --- all scripts -----------------------------------------------------------------

TOOLS = Path(__file__).resolve().parents[2] / "tools"
SHEBANGS = {".sh": "#!/usr/bin/env bash", ".pl": "#!/usr/bin/env perl", ".py": "#!/usr/bin/env python3"}
SCRIPTS = ["utt2spk_to_spk2utt.pl", "spk2utt_to_utt2spk.pl", "filter_scp.pl", "split_scp.pl",
           "validate_data_dir.sh", "fix_data_dir.sh", "combine_data.sh", "subset_data_dir.sh",
           "make_raw_list.py", "make_shard_list.py", "wav_to_duration.py"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_is_executable_and_prints_usage(name, run_tool):
    script = TOOLS / name
    assert os.access(script, os.X_OK), f"{script} is not executable"
    assert script.read_text().splitlines()[0] == SHEBANGS[script.suffix]
    result = run_tool(name, "--help")
    assert result.returncode == 0
    assert "Usage:" in result.stdout + result.stderr or "usage:" in result.stdout


# --- perl helpers ------------------------------------------------------------

def test_utt2spk_spk2utt_round_trip(data_dir, run_tool, recordings):
    spk2utt = run_tool("utt2spk_to_spk2utt.pl", data_dir / "utt2spk", check=True).stdout
    assert spk2utt == (data_dir / "spk2utt").read_text()
    assert len(spk2utt.splitlines()) == 3
    (data_dir / "spk2utt.new").write_text(spk2utt)
    utt2spk = run_tool("spk2utt_to_utt2spk.pl", data_dir / "spk2utt.new", check=True).stdout
    assert utt2spk == (data_dir / "utt2spk").read_text()


def test_spk2utt_is_sorted_when_speaker_ids_are_prefixes(tmp_path, run_tool):
    # LC_ALL=C puts libri-2007_* before libri-200_* ('7' < '_'), but speaker
    # libri-200 before libri-2007.
    d = tmp_path / "data"
    d.mkdir()
    utts = ["libri-2007_a", "libri-200_b", "libri-200_c"]
    write_lines(d / "utt2spk", [f"{u} {u.split('_')[0]}" for u in utts])
    write_lines(d / "wav.scp", [f"{u} /audio/{u}.wav" for u in utts])
    result = run_tool("fix_data_dir.sh", "--no-wav-check", d)
    assert result.returncode == 0, result.stdout + result.stderr
    assert read_lines(d / "spk2utt") == ["libri-200 libri-200_b libri-200_c", "libri-2007 libri-2007_a"]
    assert "OK: 3 utterances, 2 speakers (audio files not checked)" in result.stdout


def test_utt2spk_to_spk2utt_names_a_malformed_line(tmp_path, run_tool):
    write_lines(tmp_path / "utt2spk", ["a s1", "b s1 extra"])
    result = run_tool("utt2spk_to_spk2utt.pl", tmp_path / "utt2spk")
    assert result.returncode != 0
    assert f"{tmp_path / 'utt2spk'}:2:" in result.stderr


def test_filter_scp(tmp_path, run_tool):
    write_lines(tmp_path / "list", ["b", "c whatever"])
    write_lines(tmp_path / "in", ["a x", "b y", "c b", "d c"])
    kept = run_tool("filter_scp.pl", tmp_path / "list", tmp_path / "in", check=True).stdout
    assert kept.splitlines() == ["b y", "c b"]
    excluded = run_tool("filter_scp.pl", "--exclude", tmp_path / "list", tmp_path / "in", check=True).stdout
    assert excluded.splitlines() == ["a x", "d c"]
    by_field_2 = run_tool("filter_scp.pl", "-f", "2", tmp_path / "list", tmp_path / "in", check=True).stdout
    assert by_field_2.splitlines() == ["c b", "d c"]


# --- validate_data_dir.sh: one problem at a time -------------------------------

def swap_first_two(lines):
    return [lines[1], lines[0]] + lines[2:]


def mutate_unsorted(d, recs):
    edit_lines(d / "wav.scp", swap_first_two)


def mutate_duplicate(d, recs):
    edit_lines(d / "utt2spk", lambda lines: lines + [f"{recs[0][0]} someone"])


def mutate_missing_from_utt2spk(d, recs):
    utt = recs[3][0]
    edit_lines(d / "utt2spk", lambda lines: [l for l in lines if not l.startswith(utt + " ")])
    edit_lines(d / "spk2utt", lambda lines: [l.replace(" " + utt, "") for l in lines])


def mutate_missing_from_wav_scp(d, recs):
    edit_lines(d / "wav.scp", lambda lines: [l for l in lines if not l.startswith(recs[3][0] + " ")])


def mutate_missing_audio_file(d, recs):
    edit_lines(d / "wav.scp", lambda lines: [
        f"{recs[2][0]} /no/such/dir/missing.wav" if l.startswith(recs[2][0] + " ") else l for l in lines])


def mutate_malformed(d, recs):
    edit_lines(d / "utt2spk", lambda lines: [lines[0], lines[1] + " extra"] + lines[2:])


def mutate_spk2utt(d, recs):
    # Move the first utterance to the last speaker.
    def edit(lines):
        first = recs[0][0]
        lines = [l.replace(" " + first, "") for l in lines]
        lines[-1] += " " + first
        return lines
    edit_lines(d / "spk2utt", edit)


def mutate_carriage_return(d, recs):
    (d / "utt2spk").write_text((d / "utt2spk").read_text().replace("\n", "\r\n", 1))


def mutate_utt2dur(d, recs):
    write_lines(d / "utt2dur", [f"{utt} {'-1' if i == 1 else '3.5'}" for i, (utt, _, _) in enumerate(recs)])


def mutate_utt2dur_unknown(d, recs):
    write_lines(d / "utt2dur", [f"{utt} 3.5" for utt, _, _ in recs] + ["zzz-unknown 1.0"])


def mutate_trials(d, recs):
    write_lines(d / "trials", [f"{recs[0][0]} nobody target", f"{recs[0][0]} {recs[1][0]} maybe"])


VALIDATE_CASES = [
    # (mutation, file:line, words of the message)
    (mutate_unsorted, "wav.scp:2", "not sorted"),
    (mutate_duplicate, "utt2spk:7", "duplicate key"),
    (mutate_missing_from_utt2spk, "wav.scp:4", "is not in utt2spk"),
    (mutate_missing_from_wav_scp, "utt2spk:4", "is not in wav.scp"),
    (mutate_missing_audio_file, "wav.scp:3", "does not exist"),
    (mutate_malformed, "utt2spk:2", "malformed line"),
    (mutate_spk2utt, "spk2utt:3", "but utt2spk"),
    (mutate_carriage_return, "utt2spk:1", "carriage return"),
    (mutate_utt2dur, "utt2dur:2", "positive number"),
    (mutate_utt2dur_unknown, "utt2dur:7", "is not in utt2spk"),
    (mutate_trials, "trials:1", "'nobody' is not in utt2spk"),
    (mutate_trials, "trials:2", "must be 'target' or 'nontarget'"),
]


@pytest.mark.parametrize("mutate, where, message", VALIDATE_CASES,
                         ids=[f"{c[0].__name__}-{c[1]}" for c in VALIDATE_CASES])
def test_validate_names_file_line_and_problem(data_dir, recordings, run_tool, mutate, where, message):
    assert run_tool("validate_data_dir.sh", data_dir).returncode == 0
    mutate(data_dir, recordings)
    result = run_tool("validate_data_dir.sh", data_dir)
    assert result.returncode == 1
    matching = [line for line in result.stderr.splitlines() if f"{data_dir}/{where}:" in line]
    assert matching, result.stderr
    assert any(message in line for line in matching), result.stderr


def test_validate_ok_summary(data_dir, run_tool):
    utts = read_lines(data_dir / "utt2spk")
    write_lines(data_dir / "trials", [f"{utts[0].split()[0]} {utts[1].split()[0]} target",
                                      f"{utts[0].split()[0]} {utts[2].split()[0]} nontarget"])
    result = run_tool("validate_data_dir.sh", data_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK: 6 utterances, 3 speakers, 2 trials")


def test_relative_paths_are_relative_to_the_working_directory(tmp_path, recordings, run_tool, make_data_dir):
    recipe = tmp_path / "recipe"
    (recipe / "audio").mkdir(parents=True)
    relative = []
    for utt, spk, path in recordings:
        (recipe / "audio" / path.name).write_bytes(path.read_bytes())
        relative.append((utt, spk, Path("audio") / path.name))
    make_data_dir(recipe / "data" / "train", relative)
    result = run_tool("validate_data_dir.sh", "data/train", cwd=recipe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("validate_data_dir.sh: data/train: OK")
    result = run_tool("validate_data_dir.sh", recipe / "data" / "train", cwd=tmp_path)
    assert result.returncode == 1 and "audio file 'audio/" in result.stderr


def test_validate_no_wav_check_and_commands(data_dir, recordings, run_tool):
    mutate_missing_audio_file(data_dir, recordings)
    assert run_tool("validate_data_dir.sh", "--no-wav-check", data_dir).returncode == 0
    # A command is never checked, even when it names a missing file.
    edit_lines(data_dir / "wav.scp", lambda lines: [
        l.replace("/no/such/dir/missing.wav", "sox /no/such/file.wav -t wav - |") for l in lines])
    result = run_tool("validate_data_dir.sh", data_dir)
    assert result.returncode == 0, result.stderr


def make_segments_dir(directory, recordings, make_data_dir):
    """A data dir whose utterances are two 1-second segments of each recording."""
    directory = make_data_dir(directory, recordings)
    segments, utt2spk = [], []
    for rec, spk, _ in recordings:
        for index, (start, end) in enumerate([(0.25, 1.25), (1.25, 2.25)]):
            segments.append(f"{rec}-seg{index} {rec} {start} {end}")
            utt2spk.append(f"{rec}-seg{index} {spk}")
    write_lines(directory / "segments", segments)
    write_lines(directory / "utt2spk", utt2spk)
    spk2utt = {}
    for line in utt2spk:
        utt, spk = line.split()
        spk2utt.setdefault(spk, []).append(utt)
    write_lines(directory / "spk2utt", [" ".join([s] + u) for s, u in sorted(spk2utt.items())])
    return directory


def test_validate_segments(tmp_path, recordings, run_tool, make_data_dir):
    d = make_segments_dir(tmp_path / "seg", recordings, make_data_dir)
    result = run_tool("validate_data_dir.sh", d)
    assert result.returncode == 0, result.stderr
    assert "12 utterances, 3 speakers, 6 recordings with segments" in result.stdout
    edit_lines(d / "segments", lambda lines: (
        [lines[0].replace(recordings[0][0] + " 0.25", "no-such-recording 0.25"),
         lines[1].replace(" 2.25", " 1.0")] + lines[2:]))
    result = run_tool("validate_data_dir.sh", d)
    assert result.returncode == 1
    assert f"{d}/segments:1: recording 'no-such-recording'" in result.stderr
    assert f"{d}/segments:2: end 1.0 <= start 1.25" in result.stderr


# --- the messy data dir: validate fails, fix repairs, validate passes ---------

@pytest.fixture
def messy_dir(tmp_path, recordings):
    """Unsorted lines, a duplicate key, an utterance missing from utt2spk, a
    wav.scp entry whose file does not exist, a stale spk2utt, utt2dur and
    trials naming utterances that will be dropped."""
    d = tmp_path / "messy"
    d.mkdir()
    (u0, s0, p0), (u1, s1, p1), (u2, s2, p2), (u3, s3, p3), (u4, s4, p4), (u5, s5, p5) = recordings
    ghost = f"{s5}_ghost"
    write_lines(d / "wav.scp", [f"{u3} {p3}", f"{u0} {p0}", f"{ghost} {d}/missing/ghost.wav",
                                f"{u5} {p5}", f"{u1} {p1}", f"{u4} {p4}", f"{u2} {p2}"])
    # u4 is missing from utt2spk; u1 appears twice (the first line wins).
    write_lines(d / "utt2spk", [f"{u0} {s0}", f"{u1} {s1}", f"{u2} {s2}", f"{u1} wrong-speaker",
                                f"{u3} {s3}", f"{u5} {s5}", f"{ghost} {s5}"])
    write_lines(d / "spk2utt", [f"{s0} {u0} {u1}", f"{s2} {u2} {u3}", f"{s4} {u4} {u5}"])
    durations = durations_of(recordings)
    write_lines(d / "utt2dur", [f"{u} {durations[u]:.4f}" for u in (u5, u0, u1, u2, u3, u4)])
    write_lines(d / "trials", [f"{u0} {u1} target", f"{u0} {u4} nontarget",
                               f"{u5} {ghost} target", f"{u2} {u5} nontarget"])
    return d


def test_validate_fails_on_messy_dir(messy_dir, recordings, run_tool):
    u1, u4 = recordings[1][0], recordings[4][0]
    result = run_tool("validate_data_dir.sh", messy_dir)
    assert result.returncode == 1
    errors = result.stderr
    assert f"{messy_dir}/wav.scp:2: not sorted" in errors
    assert f"{messy_dir}/utt2spk:4: duplicate key '{u1}' (first on line 2)" in errors
    assert f"{messy_dir}/wav.scp:3: audio file '{messy_dir}/missing/ghost.wav' does not exist" in errors
    assert f"{messy_dir}/wav.scp:6: utterance '{u4}' is not in utt2spk" in errors
    assert "is not a valid data directory" in errors


def test_fix_repairs_and_reports(messy_dir, recordings, run_tool):
    originals = {p.name: p.read_bytes() for p in messy_dir.iterdir()}
    (u0, s0, _), (u1, s1, _), (u2, s2, _), (u3, s3, _), (u4, _, _), (u5, s5, _) = recordings
    ghost = f"{s5}_ghost"

    result = run_tool("fix_data_dir.sh", messy_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    report = result.stdout
    assert re.search(rf"utt2spk: dropped 1 duplicate key\(s\), keeping the first line: {u1} \(line 4, kept line 2\)",
                     report)
    assert re.search(rf"dropped 1 utterance\(s\) whose audio file does not exist: {ghost} ", report)
    assert re.search(rf"dropped 1 utterance\(s\) not in utt2spk \(listed in wav.scp\): {u4}", report)
    assert re.search(rf"utt2dur: dropped 1 line\(s\) of utterances not kept: {u4}", report)
    assert re.search(r"trials: dropped 2 trial\(s\) naming utterances not kept", report)
    assert f"{messy_dir}/wav.scp: was not sorted; sorted it" in report
    assert "kept 5 of 6 utterances in utt2spk, 3 speakers" in report
    assert "OK: 5 utterances, 3 speakers, 2 trials" in report

    kept = [u0, u1, u2, u3, u5]
    assert read_lines(messy_dir / "utt2spk") == [f"{u0} {s0}", f"{u1} {s1}", f"{u2} {s2}", f"{u3} {s3}",
                                                  f"{u5} {s5}"]
    assert [line.split()[0] for line in read_lines(messy_dir / "wav.scp")] == kept
    assert [line.split()[0] for line in read_lines(messy_dir / "utt2dur")] == kept
    assert read_lines(messy_dir / "spk2utt") == [f"{s0} {u0} {u1}", f"{s2} {u2} {u3}", f"{s5} {u5}"]
    assert read_lines(messy_dir / "trials") == [f"{u0} {u1} target", f"{u2} {u5} nontarget"]
    for name, content in originals.items():
        assert (messy_dir / ".backup" / name).read_bytes() == content
    assert not [p for p in messy_dir.iterdir() if p.name.startswith(".fix_data_dir")]

    result = run_tool("validate_data_dir.sh", messy_dir)
    assert result.returncode == 0, result.stderr

    # A second run changes nothing and keeps the backups of the first.
    result = run_tool("fix_data_dir.sh", messy_dir)
    assert result.returncode == 0
    assert "nothing to change" in result.stdout
    assert (messy_dir / ".backup" / "utt2spk").read_bytes() == originals["utt2spk"]


def test_fix_segments_dir(tmp_path, recordings, run_tool, make_data_dir):
    d = make_segments_dir(tmp_path / "seg", recordings, make_data_dir)
    rec0 = recordings[0][0]
    # Drop recording 0 from wav.scp: its two segments go; make one segment empty.
    edit_lines(d / "wav.scp", lambda lines: lines[1:])
    edit_lines(d / "segments", lambda lines: lines[:2] + [lines[2].replace(" 0.25 1.25", " 1.25 1.25")]
               + lines[3:])
    assert run_tool("validate_data_dir.sh", d).returncode == 1
    result = run_tool("fix_data_dir.sh", d)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"segments: dropped 1 malformed line\(s\): line 3 \(end 1.25 <= start 1.25\)", result.stdout)
    assert re.search(rf"dropped 2 segment\(s\) whose recording is not in wav.scp: {rec0}-seg0, {rec0}-seg1",
                     result.stdout)
    segments = read_lines(d / "segments")
    assert len(segments) == 9 and segments == sorted(segments)
    assert [line.split()[0] for line in read_lines(d / "utt2spk")] == [line.split()[0] for line in segments]
    assert "OK: 9 utterances, 3 speakers, 5 recordings with segments" in result.stdout


def test_fix_refuses_to_empty_a_dir(data_dir, run_tool):
    edit_lines(data_dir / "utt2spk", lambda lines: [f"other-{l}" for l in lines])
    before = {p.name: p.read_bytes() for p in data_dir.iterdir()}
    result = run_tool("fix_data_dir.sh", data_dir)
    assert result.returncode == 1
    assert "no utterance would remain" in result.stderr
    assert {p.name: p.read_bytes() for p in data_dir.iterdir()} == before


# --- combine and subset ---------------------------------------------------------

def test_combine_dirs_with_and_without_segments(tmp_path, recordings, run_tool, make_data_dir):
    plain = make_data_dir(tmp_path / "plain", recordings[:2])
    durations = durations_of(recordings[:2])
    write_lines(plain / "utt2dur", [f"{u} {durations[u]}" for u, _, _ in recordings[:2]])
    segmented = make_segments_dir(tmp_path / "segmented", recordings[2:], make_data_dir)
    dest = tmp_path / "combined"
    result = run_tool("combine_data.sh", dest, plain, segmented)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "has no segments; using whole recordings" in result.stdout
    assert "warning: utt2dur not combined: missing in" in result.stderr
    assert "OK: 10 utterances, 3 speakers, 6 recordings with segments" in result.stdout
    segments = read_lines(dest / "segments")
    assert f"{recordings[0][0]} {recordings[0][0]} 0 {durations[recordings[0][0]]}" in segments
    assert len(read_lines(dest / "wav.scp")) == 6
    assert not (dest / "utt2dur").exists()


def test_combine_plain_dirs_and_conflicts(tmp_path, recordings, run_tool, make_data_dir):
    first = make_data_dir(tmp_path / "first", recordings[:4])
    second = make_data_dir(tmp_path / "second", recordings[3:])  # recordings[3] in both, same lines
    dest = tmp_path / "combined"
    result = run_tool("combine_data.sh", "--skip-fix", "true", dest, first, second)
    assert result.returncode == 0, result.stderr
    assert (dest / "utt2spk").read_text() == "".join(f"{u} {s}\n" for u, s, _ in recordings)
    assert run_tool("validate_data_dir.sh", dest).returncode == 0

    edit_lines(second / "utt2spk", lambda lines: [lines[0].split()[0] + " another-speaker"] + lines[1:])
    result = run_tool("combine_data.sh", tmp_path / "conflict", first, second)
    assert result.returncode != 0
    assert f"'{recordings[3][0]}' differs between {first}/utt2spk:4 and {second}/utt2spk:1" in result.stderr

    result = run_tool("combine_data.sh", first, first, second)
    assert result.returncode != 0 and "is also a source" in result.stderr


@pytest.fixture
def full_dir(data_dir, recordings):
    durations = durations_of(recordings)
    write_lines(data_dir / "utt2dur", [f"{u} {durations[u]}" for u, _, _ in recordings])
    u = [utt for utt, _, _ in recordings]
    write_lines(data_dir / "trials", [f"{u[0]} {u[1]} target", f"{u[0]} {u[4]} nontarget",
                                      f"{u[4]} {u[5]} target", f"{u[1]} {u[2]} nontarget"])
    return data_dir


def subset_utts(dest):
    return [line.split()[0] for line in read_lines(dest / "utt2spk")]


def test_subset_by_utterance_list(tmp_path, full_dir, recordings, run_tool):
    u = [utt for utt, _, _ in recordings]
    write_lines(tmp_path / "list", [u[4], u[0], "nobody"])
    dest = tmp_path / "subset"
    result = run_tool("subset_data_dir.sh", "--utt-list", tmp_path / "list", full_dir, dest)
    assert result.returncode == 0, result.stderr
    assert "1 utterance(s) of" in result.stderr and "nobody" in result.stderr
    assert subset_utts(dest) == [u[0], u[4]]
    assert [line.split()[0] for line in read_lines(dest / "wav.scp")] == [u[0], u[4]]
    assert [line.split()[0] for line in read_lines(dest / "utt2dur")] == [u[0], u[4]]
    assert read_lines(dest / "trials") == [f"{u[0]} {u[4]} nontarget"]
    assert run_tool("validate_data_dir.sh", dest).returncode == 0


def test_subset_by_speaker_per_speaker_and_first_n(tmp_path, full_dir, recordings, run_tool):
    u = [utt for utt, _, _ in recordings]
    write_lines(tmp_path / "speakers", [recordings[2][1]])
    run_tool("subset_data_dir.sh", "--spk_list", tmp_path / "speakers", full_dir, tmp_path / "by_spk", check=True)
    assert subset_utts(tmp_path / "by_spk") == [u[2], u[3]]
    assert not (tmp_path / "by_spk" / "trials").exists()

    run_tool("subset_data_dir.sh", "--per-spk", "1", full_dir, tmp_path / "per_spk", check=True)
    assert subset_utts(tmp_path / "per_spk") == [u[0], u[2], u[4]]
    assert len(read_lines(tmp_path / "per_spk" / "spk2utt")) == 3

    result = run_tool("subset_data_dir.sh", full_dir, "3", tmp_path / "first", check=True)
    assert subset_utts(tmp_path / "first") == u[:3]
    assert "3 of 6 utterances, 2 speakers, 2 trials" in result.stdout
    for name in ("by_spk", "per_spk", "first"):
        assert run_tool("validate_data_dir.sh", tmp_path / name).returncode == 0

    result = run_tool("subset_data_dir.sh", full_dir, "7", tmp_path / "too_many")
    assert result.returncode != 0 and "only 6" in result.stderr
    result = run_tool("subset_data_dir.sh", "--per-spk", "1", "--spk-list", tmp_path / "speakers",
                      full_dir, tmp_path / "both")
    assert result.returncode != 0 and "only one of" in result.stderr


def test_subset_of_segments_keeps_only_used_recordings(tmp_path, recordings, run_tool, make_data_dir):
    d = make_segments_dir(tmp_path / "seg", recordings, make_data_dir)
    write_lines(tmp_path / "list", [f"{recordings[1][0]}-seg1", f"{recordings[5][0]}-seg0"])
    dest = tmp_path / "subset"
    run_tool("subset_data_dir.sh", "--utt-list", tmp_path / "list", d, dest, check=True)
    assert [line.split()[0] for line in read_lines(dest / "wav.scp")] == [recordings[1][0], recordings[5][0]]
    assert len(read_lines(dest / "segments")) == 2
    assert run_tool("validate_data_dir.sh", dest).returncode == 0
