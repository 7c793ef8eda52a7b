"""The bulk byte-span table: the same fields, numbers, keys and lines as the string path."""

import numpy as np
import pytest

from wespk.io.byte_table import KeyIndex, fixed_decimals, join_fields, parse_byte_table, parse_decimals
from wespk.io.trials import iter_table_pieces, iter_text_table

EDGE_VALUES = [0.0, -0.0, -1e-9, 1e-9, 0.5e-5, 1.5e-5, 2.5e-5, -2.5e-5, 0.125, 0.375, 2.675, 1.0000049999999,
               -0.9999999, 9.999995, 99999.999995, 123456789.123456, 2.0 ** 52 / 1e5, 1e300, -1e300, 5e-324,
               np.inf, -np.inf, np.nan]


def _values(seed=0, n=20000):
    rng = np.random.default_rng(seed)
    scales = rng.choice([1e-7, 1e-4, 1e-2, 1.0, 10.0, 1e3, 1e7], n)
    values = rng.standard_normal(n) * scales
    # values on and next to half-way points of 4 and 5 decimals
    halves = (rng.integers(-10 ** 6, 10 ** 6, 2000) + 0.5) / 10.0 ** rng.choice([4, 5], 2000)
    near = np.concatenate([halves, np.nextafter(halves, np.inf), np.nextafter(halves, -np.inf)])
    return np.concatenate([values, near, EDGE_VALUES])


@pytest.mark.parametrize("decimals", [1, 4, 5])
def test_fixed_decimals_equals_percent_formatting(decimals):
    values = _values(decimals)
    data, lengths = fixed_decimals(values, decimals)
    lines = join_fields([(data, lengths, "right")]).decode().split("\n")[:-1]
    assert lines == [f"%.{decimals}f" % v for v in values.tolist()]


def test_parse_decimals_equals_float():
    texts = [f"%.{d}f" % v for d in (4, 5, 9) for v in _values(3, 3000).tolist()]
    texts += ["1e-5", "+1", ".5", "5.", "-", "1.2.3", "00012", "-0", "-0.000", "123456789012345", "1234567890123456",
              "0.000000000000001", "12-3", "abc", "nan", "-inf", "0x10"]
    data = "".join(f"k{i} {t}\n" for i, t in enumerate(texts)).encode()
    table = parse_byte_table("scores", data)
    values, parsed = parse_decimals(table, 1)
    for text, value, ok in zip(texts, values.tolist(), parsed.tolist()):
        if ok:
            reference = float(text)
            assert value == reference and np.signbit(value) == np.signbit(reference), text
        else:
            assert np.isnan(value)
    by_text = dict(zip(texts, parsed.tolist()))
    assert by_text["00012"] and by_text["-0"] and by_text["-0.000"] and by_text["123456789012345"]
    for text in ("1e-5", "+1", ".5", "5.", "-", "1.2.3", "1234567890123456", "0.000000000000001", "12-3", "abc",
                 "nan"):
        assert not by_text[text], text  # left to float() (or to the error message)
    assert parsed[:3000].mean() > 0.9  # the bulk path takes the usual score fields


def test_fields_and_line_numbers_match_the_string_reader(tmp_path):
    text = "a b c\n\n  dd\teeee   f  \n\n\ng hh i"  # blank lines, tabs, runs of spaces, no final newline
    path = tmp_path / "t"
    path.write_text(text)
    table = parse_byte_table(str(path), text.encode())
    pieces = list(iter_text_table(path, (3,), "list"))  # the unterminated last line is a piece of its own
    assert [table.strings(j) for j in range(3)] == [sum((p.columns[j] for p in pieces), []) for j in range(3)]
    assert table.line_numbers.tolist() == [n for p in pieces for n in p.line_numbers.tolist()] == [1, 3, 6]
    assert table.field(1, 1) == "eeee"
    assert table.equals(2, b"f").tolist() == [False, True, False]


@pytest.mark.parametrize("text", ["a b\nc\n", "a b\nc d e\n", "caf\u00e9 b\n", "a\x1cb c\n", "a\x00 b\n", "\n \n",
                                  "a b\x7f\n"])
def test_irregular_pieces_are_left_to_the_string_reader(text):
    """Different field counts, non-ASCII text, control characters (str.split splits on \\x1c): not handled."""
    assert parse_byte_table("x", text.encode("utf-8")) is None


def test_pieces_mix_bulk_and_string_tables_with_the_same_fields(tmp_path):
    lines = [f"utt{i:04d} utt{(7 * i) % 1000:04d} {'target' if i % 3 else 'nontarget'}" for i in range(1000)]
    lines[500] = "\u00fcber utt0001 target"  # UTF-8: that piece goes through the string reader
    path = tmp_path / "trials"
    path.write_text("\n".join(lines) + "\n")
    pieces = list(iter_table_pieces(path, (2, 3), "trial list", chunk_bytes=4096))
    kinds = {type(piece).__name__ for piece in pieces}
    assert kinds == {"ByteTable", "TextTable"}
    fields = [[], [], []]
    numbers = []
    for piece in pieces:
        columns = ([piece.strings(j) for j in range(3)] if hasattr(piece, "strings") else piece.columns)
        for j in range(3):
            fields[j] += columns[j]
        numbers += piece.line_numbers.tolist()
    reference = next(iter_text_table(path, (2, 3), "trial list", chunk_bytes=1 << 20))
    assert fields == reference.columns and numbers == list(range(1, 1001))


def test_key_index_finds_rows_and_reports_missing_keys():
    keys = [f"id{i:05d}/video{i % 13}/{i:05d}.wav" for i in range(5000)] + ["k", "a" * 8, "a" * 9, "a" * 16]
    index = KeyIndex(keys)
    assert index.usable
    queries = keys[::-1] + ["a" * 7, "a" * 10, "a" * 17, "missing", keys[3] + "x", keys[3][:-1], "id00003"]
    data = "".join(f"{q} x\n" for q in queries).encode()
    rows = index.lookup(parse_byte_table("q", data), 0)
    expected = list(range(len(keys)))[::-1] + [-1] * 7
    assert rows.tolist() == expected


def test_key_index_refuses_what_it_cannot_handle():
    assert not KeyIndex(["a", "b", "a"]).usable  # duplicates: the dict path reports them
    assert not KeyIndex(["caf\u00e9"]).usable
    assert not KeyIndex(["a b"]).usable
    assert not KeyIndex([]).usable
