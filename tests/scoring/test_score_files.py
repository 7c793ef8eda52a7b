"""Trial-list and score-file reading: layouts, exact error locations, round trips."""

import numpy as np
import pytest

from wespk.io.files import DataFileError
from wespk.io.trials import read_trials
from wespk.scoring.score_files import (format_fixed, read_score_file, read_score_norm_file, round_like_format,
                                       write_score_file, write_score_norm_file)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_trial_list_with_and_without_labels(tmp_path):
    labelled = read_trials(write(tmp_path, "t1", "a b target\nc d nontarget\n"))
    assert labelled.enroll == ["a", "c"] and labelled.test == ["b", "d"]
    assert labelled.is_target.tolist() == [True, False]
    unlabelled = read_trials(write(tmp_path, "t2", "a b\nc d"))  # no final newline
    assert unlabelled.labels is None and len(unlabelled) == 2
    with pytest.raises(ValueError, match="no labels"):
        unlabelled.is_target
    # iterating gives (enroll, test, label) tuples, label None when there is none
    assert list(labelled) == [("a", "b", "target"), ("c", "d", "nontarget")]
    assert list(unlabelled) == [("a", "b", None), ("c", "d", None)]


def test_blank_lines_keep_true_line_numbers(tmp_path):
    path = write(tmp_path, "t", "\na b target\n\n  \nc d nontarget\n")
    trials = read_trials(path)
    assert trials.line_numbers.tolist() == [2, 5]


@pytest.mark.parametrize("text, line, message", [
    ("a b target\nc d nontarget x\n", 2, "has 4 fields but line 1 has 3"),
    ("a b target\nc d tgt\n", 2, "label must be 'target' or 'nontarget' (field 3)"),
    ("a\n", 1, "expected 2 or 3 fields"),
    ("a b target\nc d\n", 2, "has 2 fields but line 1 has 3"),
])
def test_malformed_trial_lines_name_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, "trials", text)
    with pytest.raises(DataFileError) as error:
        read_trials(path)
    assert error.value.line_no == line
    assert str(error.value).startswith(f"{path}:{line}: ")
    assert message in str(error.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataFileError, match="file not found"):
        read_trials(tmp_path / "absent")
    with pytest.raises(DataFileError, match="empty trial list"):
        read_trials(write(tmp_path, "empty", "\n\n"))


def test_non_ascii_whitespace_is_counted_like_str_split(tmp_path):
    # U+00A0 separates fields for str.split but is not ASCII whitespace: the field count
    # per line must still agree with str.split (the reader falls back to a slow count).
    trials = read_trials(write(tmp_path, "t", "a\u00a0b target\nc d nontarget\n"))
    assert trials.enroll == ["a", "c"] and trials.test == ["b", "d"]
    assert trials.labels == ["target", "nontarget"]
    with pytest.raises(DataFileError) as error:
        read_trials(write(tmp_path, "t2", "a b target\nc\u00a0d\u00a0e nontarget\n"))
    assert error.value.line_no == 2


def test_score_file_errors_name_the_line(tmp_path):
    path = write(tmp_path, "s", "a b 0.5 target\nc d oops nontarget\n")
    with pytest.raises(DataFileError, match=r":2: score \(field 3\) is not a number: 'oops'"):
        read_score_file(path)
    path = write(tmp_path, "s2", "a b 0.5 target\nc d nan nontarget\n")
    with pytest.raises(DataFileError, match=r":2: score \(field 3\) is not finite"):
        read_score_file(path)
    with pytest.raises(DataFileError, match="no label column"):
        read_score_file(write(tmp_path, "s3", "a b 0.5\n"), require_labels=True)
    with pytest.raises(DataFileError, match="not a score-norm file"):
        read_score_norm_file(write(tmp_path, "s4", "a b 0.5 target\n"))


def test_score_file_round_trip(tmp_path):
    scores = np.array([0.123456, -1.5, 2.0])
    path = tmp_path / "scores"
    write_score_file(path, ["a", "b", "c"], ["x", "y", "z"], scores, ["target", "nontarget", "target"])
    assert path.read_text().splitlines()[0] == "a x 0.12346 target"
    table = read_score_file(path)
    np.testing.assert_allclose(table.scores, [0.12346, -1.5, 2.0])
    assert table.score_text == ["0.12346", "-1.50000", "2.00000"]
    write_score_file(path, ["a"], ["x"], np.array([0.1 + 0.2]), decimals=None)
    assert path.read_text() == f"a x {0.1 + 0.2!r}\n"


def test_score_norm_file_round_trip(tmp_path):
    path = tmp_path / "normed"
    write_score_norm_file(path, ["a"], ["b"], np.array([1.234567]), ["target"], np.array([10.0]),
                          np.array([11.23456]), np.array([np.float32(0.1)]), np.array([0.2]))
    assert path.read_text() == "a b 1.23457 target 10.0000 11.2346 0.1000 0.2000\n"
    table = read_score_norm_file(path)
    np.testing.assert_allclose(table.quality, [[10.0, 11.2346, 0.1, 0.2]])
    write_score_norm_file(path, ["a"], ["b"], np.array([1.0]), None, *(np.ones(1),) * 4)
    assert read_score_norm_file(path).labels is None


def test_round_like_format_equals_parsing_the_text():
    rng = np.random.default_rng(9)
    grid = np.arange(-20000, 20000) / 1e4
    values = np.concatenate([
        rng.uniform(-30, 30, 20000),
        grid + 0.00005,                      # decimal half-way points (not exact in binary)
        np.array([0.125, 2.5e-5, -2.5e-5, 0.00015, 1.00005, 1e20, -0.0, 0.0]),
    ])
    text = format_fixed(values, 4)
    expected = np.array([float(t) for t in text])
    result = round_like_format(values, text, 4)
    assert np.array_equal(result, expected)
    assert np.array_equal(np.signbit(result), np.signbit(expected))


def test_chunked_readers_equal_the_whole_file_readers(tmp_path):
    from wespk.io.trials import iter_trials
    from wespk.scoring.score_files import iter_score_file

    lines = [f"u{i} v{i % 7} {'target' if i % 3 == 0 else 'nontarget'}\n" if i % 11 else "\n" for i in range(400)]
    path = write(tmp_path, "trials", "".join(lines).rstrip("\n"))  # blank lines, no final newline
    whole = read_trials(path)
    for chunk_bytes in (5, 64, 1000, 1 << 20):
        pieces = list(iter_trials(path, chunk_bytes))
        assert [key for piece in pieces for key in piece.enroll] == whole.enroll
        assert [label for piece in pieces for label in piece.labels] == whole.labels
        assert np.array_equal(np.concatenate([piece.line_numbers for piece in pieces]), whole.line_numbers)
    scores = write(tmp_path, "scores", "".join(f"u{i} v{i} {i / 7:.5f} target\n" for i in range(300)))
    pieces = list(iter_score_file(scores, chunk_bytes=100))
    assert len(pieces) > 10
    np.testing.assert_array_equal(np.concatenate([p.scores for p in pieces]), read_score_file(scores).scores)
    # an error in a later piece names the line of the whole file
    bad = write(tmp_path, "bad", "".join(lines) + "a b target extra\n")
    with pytest.raises(DataFileError) as error:
        list(iter_trials(bad, 64))
    assert error.value.line_no == 401 and "has 4 fields but line 2 has 3" in str(error.value)
    with pytest.raises(DataFileError, match="empty trial list"):
        list(iter_trials(write(tmp_path, "blank", "\n \n"), 1))
