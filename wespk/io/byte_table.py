"""Whitespace-separated text tables handled as byte spans, without a Python object per field.

Trial lists and score files of VoxCeleb-E/H size (half a million lines) and
beyond (VoxCeleb2-sized lists of millions) spend most of their time on
per-field Python work: splitting lines into strings, one dict lookup per key,
one ``float()`` per number, one ``%``-format per line. This module does the
same jobs as numpy operations over the bytes of a file piece:

* :func:`parse_byte_table` finds every field as ``(start, length)`` of a
  uint8 buffer;
* :class:`KeyIndex` maps fields to the rows of a key list through 64-bit hashes
  of the fields' bytes, verified byte for byte;
* :func:`parse_decimals` reads plain decimal numbers (``-12.345``), exactly:
  with at most 15 digits the digits form an integer below ``2**53`` and the
  number is that integer divided by a power of ten, both exact in float64, so
  the one rounding of the division gives the double that ``float()`` gives;
  other forms (exponents, ``inf``, more digits) are parsed by ``float()``;
* :func:`fixed_decimals` formats numbers as ``'%.Nf'`` does, digit for digit
  (the few values within rounding error of a half-way point are formatted by
  Python);
* :func:`join_fields` assembles lines from field spans and formatted numbers.

Only plain ASCII pieces take this path: a piece with another byte (UTF-8 text,
or a control character that ``str.split`` would treat as a separator) makes
:func:`parse_byte_table` return None, and the caller uses the string reader,
which also produces every error message. The results are the same either way,
byte for byte (tested against the string path).
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

#: ASCII whitespace that separates fields (what ``str.split`` splits on within ASCII, less \x1c-\x1f).
_SEPARATOR = np.zeros(256, dtype=bool)
_SEPARATOR[[ord(c) for c in " \t\n\r\x0b\x0c"]] = True
#: Bytes allowed in a piece handled here: printable ASCII and the separators above.
_PLAIN = np.zeros(256, dtype=bool)
_PLAIN[0x21:0x7f] = True
_PLAIN |= _SEPARATOR
_PAD = 8
#: Largest number of decimal digits parsed by the exact integer / power-of-ten path.
MAX_EXACT_DIGITS = 15
_POWERS_OF_TEN = 10 ** np.arange(19, dtype=np.int64)
_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_HASH_LENGTH = np.uint64(0xC2B2AE3D27D4EB4F)


def _words_at(buffer: np.ndarray) -> np.ndarray:
    """The little-endian uint64 starting at every byte of ``buffer`` (which ends with 8 padding bytes)."""
    return np.ndarray(shape=(len(buffer) - _PAD + 1,), dtype="<u8", buffer=buffer, strides=(1,))


def field_words(buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                num_words: Optional[int] = None) -> np.ndarray:
    """``[N, num_words]`` uint64: the bytes of each field, eight per word, zero after the field's end.

    ``num_words`` defaults to enough words for the longest field; longer fields are cut.
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if num_words is None:
        num_words = max(1, -(-int(lengths.max(initial=0)) // 8))
    words = _words_at(buffer)
    out = np.empty((len(starts), num_words), dtype=np.uint64)
    last = len(words) - 1
    for j in range(num_words):
        remaining = lengths - 8 * j
        word = words[np.minimum(starts + 8 * j, last)]
        keep = np.clip(remaining, 0, 8).astype(np.uint64)
        mask = np.where(keep >= 8, np.uint64(0xFFFFFFFFFFFFFFFF),
                        (np.uint64(1) << (np.uint64(8) * np.minimum(keep, 7))) - np.uint64(1))
        out[:, j] = word & mask
    return out


def field_bytes(buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``[N, W]`` uint8: each field's bytes from column 0, zero after its end (W a multiple of 8)."""
    words = field_words(buffer, starts, lengths)
    return words.view(np.uint8).reshape(len(words), -1)


class RowLines:
    """Row -> file line of a table read from a text file (``line_numbers[i]``: 1-based line of row ``i``);
    shared by :class:`ByteTable` and :class:`wespk.io.trials.TextTable`."""

    line_numbers: np.ndarray

    @property
    def num_rows(self) -> int:
        return len(self.line_numbers)

    def line_of(self, row: int) -> int:
        """The 1-based file line of ``row``."""
        return int(self.line_numbers[row])


@dataclass
class ByteTable(RowLines):
    """The fields of a piece of a text file whose non-blank lines all have ``num_columns`` fields.

    ``buffer`` holds the piece's bytes followed by 8 zero bytes; field ``(i, j)``
    is ``buffer[starts[i, j]:starts[i, j] + lengths[i, j]]``; ``line_numbers[i]``
    is the 1-based file line of row ``i``.
    """

    path: str
    buffer: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    line_numbers: np.ndarray

    @property
    def num_columns(self) -> int:
        return self.starts.shape[1]

    def __len__(self) -> int:
        return self.num_rows

    def field(self, row: int, column: int) -> str:
        start = int(self.starts[row, column])
        return self.buffer[start:start + int(self.lengths[row, column])].tobytes().decode("ascii")

    def strings(self, column: int) -> List[str]:
        """Column ``column`` as a list of str (one object per field: for small tables and error paths)."""
        data = self.buffer.tobytes()
        starts = self.starts[:, column].tolist()
        ends = (self.starts[:, column] + self.lengths[:, column]).tolist()
        return [data[a:b].decode("ascii") for a, b in zip(starts, ends)]

    def words(self, column: int, num_words: Optional[int] = None) -> np.ndarray:
        return field_words(self.buffer, self.starts[:, column], self.lengths[:, column], num_words)

    def column_bytes(self, column: int) -> Tuple[np.ndarray, np.ndarray]:
        """``(bytes [N, W], lengths)`` of a column, left-aligned, for :func:`join_fields`."""
        return field_bytes(self.buffer, self.starts[:, column], self.lengths[:, column]), self.lengths[:, column]

    def equals(self, column: int, text: bytes) -> np.ndarray:
        """Boolean per row: the field is exactly ``text``."""
        target = np.frombuffer(text + b"\0" * (-len(text) % 8), dtype="<u8")
        same = self.lengths[:, column] == len(text)
        words = self.words(column, len(target))
        return same & np.all(words == target[None, :], axis=1)


def parse_byte_table(path: str, data: bytes, first_line: int = 1,
                     width: Optional[int] = None) -> Optional[ByteTable]:
    """The fields of ``data`` (whole lines starting at file line ``first_line``), or None.

    None means "not handled here": the piece has a byte other than printable
    ASCII and the separators, has no field at all, or its non-blank lines do
    not all have the same number of fields (``width`` when given). The caller
    then uses the string reader, which reports any error.
    """
    buffer = np.frombuffer(data + b"\0" * _PAD, dtype=np.uint8)
    body = buffer[:len(data)]
    if len(body) == 0:
        return None
    if int(body.max()) > 0x7e:
        return None
    is_separator = body <= 0x20
    # plain: every byte below 0x21 is a separator (checked byte by byte only when not all are spaces/newlines)
    only_spaces_and_newlines = (np.count_nonzero(is_separator)
                                == np.count_nonzero(body == 0x20) + np.count_nonzero(body == 0x0a))
    if not only_spaces_and_newlines and not _SEPARATOR[body[is_separator]].all():
        return None
    change = np.diff(is_separator.view(np.int8))
    starts = np.flatnonzero(change == -1) + 1  # separator -> field
    ends = np.flatnonzero(change == 1) + 1  # field -> separator
    if not is_separator[0]:
        starts = np.concatenate(([0], starts))
    if not is_separator[-1]:
        ends = np.concatenate((ends, [len(body)]))
    if len(starts) == 0:
        return None
    line_ends = np.flatnonzero(body == ord("\n"))
    if len(line_ends) == 0 or line_ends[-1] != len(body) - 1:
        line_ends = np.concatenate((line_ends, [len(body)]))
    lines = _lines_of_rows(starts, ends, line_ends, width)
    if lines is None:
        return None
    width = len(starts) // len(lines)
    return ByteTable(path=str(path), buffer=buffer, starts=starts.reshape(-1, width),
                     lengths=(ends - starts).reshape(-1, width), line_numbers=lines + first_line)


def _lines_of_rows(starts: np.ndarray, ends: np.ndarray, line_ends: np.ndarray,
                   width: Optional[int]) -> Optional[np.ndarray]:
    """0-based line of each row when every non-blank line has the same number of fields (``width`` if
    given), else None. ``line_ends`` are the positions of the newlines (and of the end of an unterminated
    last line); fields never span lines."""
    if width is None or len(starts) == width * len(line_ends):
        # no blank line: row i must lie on line i, i.e. end before newline i and start after newline i - 1
        guess = width or (len(starts) // len(line_ends) if len(starts) % len(line_ends) == 0 else 0)
        if guess and len(starts) == guess * len(line_ends):
            first, last = starts[::guess], ends[guess - 1::guess]
            if np.all(last <= line_ends) and np.all(first[1:] > line_ends[:-1]):
                return np.arange(len(line_ends))
    # fields per line: how many field starts lie before each line end
    counts = np.diff(np.searchsorted(starts, line_ends), prepend=0)
    lines = np.flatnonzero(counts)
    widths = counts[lines]
    if np.any(widths != (widths[0] if width is None else width)):
        return None
    return lines


def _hash_words(words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of ``words`` (a field's bytes) and its length."""
    h = np.asarray(lengths, dtype=np.uint64) * _HASH_LENGTH
    for j in range(words.shape[1]):
        h = (h ^ words[:, j]) * _HASH_MULTIPLIER
        h ^= h >> np.uint64(29)
    return h


class KeyIndex:
    """Rows of a list of keys, looked up for the fields of a :class:`ByteTable` with vectorised hashing.

    ``usable`` is False when the keys cannot be handled this way (a key that
    is not plain printable ASCII, or two keys with the same hash, which a
    duplicate key also gives); callers then use a dict.
    """

    def __init__(self, keys: Sequence[str]):
        self.usable = False
        if len(keys) == 0:
            return
        try:
            data = "\n".join(keys).encode("ascii")
        except UnicodeEncodeError:
            return
        table = parse_byte_table("keys", data + b"\n", width=1)
        if table is None or table.num_rows != len(keys):  # a key with a separator inside, or an empty key
            return
        lengths = table.lengths[:, 0]
        self.num_words = max(1, -(-int(lengths.max()) // 8))
        self.words = table.words(0, self.num_words)
        self.lengths = lengths
        hashes = _hash_words(self.words, lengths)
        if len(keys) > 1 and np.any(np.diff(np.sort(hashes)) == 0):
            return
        self.hashes = hashes
        # open addressing with linear probing, at most a quarter full: a lookup reads one or two slots
        self.bits = max(4, int(np.ceil(np.log2(len(keys)))) + 2)
        self.slots = np.full(1 << self.bits, -1, dtype=np.int32 if len(keys) < 2 ** 31 else np.int64)
        home = self._home(hashes)
        pending = np.arange(len(keys))
        probe = 0
        while len(pending):
            slot = (home[pending] + probe) & (len(self.slots) - 1)
            free = np.flatnonzero(self.slots[slot] < 0)
            taken, first = np.unique(slot[free], return_index=True)  # one key per free slot
            self.slots[taken] = pending[free[first]]
            placed = np.zeros(len(pending), dtype=bool)
            placed[free[first]] = True
            pending = pending[~placed]
            probe += 1
        self.usable = True

    def _home(self, hashes: np.ndarray) -> np.ndarray:
        return (hashes >> np.uint64(64 - self.bits)).astype(np.int64)

    def lookup(self, table: ByteTable, column: int) -> np.ndarray:
        """int64 row of each field of ``column``; -1 where the field is not one of the keys."""
        lengths = table.lengths[:, column]
        words = table.words(column, self.num_words)
        hashes = _hash_words(words, lengths)
        rows = np.full(len(hashes), -1, dtype=np.int64)
        open_ = np.arange(len(hashes))
        slot = self._home(hashes)
        mask = len(self.slots) - 1
        while len(open_):
            candidate = self.slots[slot[open_]].astype(np.int64)
            hit = candidate >= 0
            match = hit.copy()
            match[hit] = self.hashes[candidate[hit]] == hashes[open_[hit]]
            rows[open_[match]] = candidate[match]
            more = hit & ~match  # an occupied slot of another key: probe the next one
            open_ = open_[more]
            slot[open_] = (slot[open_] + 1) & mask
        found = rows >= 0
        rows_found = rows[found]
        same = self.lengths[rows_found] == lengths[found]
        same &= np.all(self.words[rows_found] == words[found], axis=1)  # the bytes themselves, not only the hash
        rows[np.flatnonzero(found)[~same]] = -1
        return rows


def parse_decimals(table: ByteTable, column: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(values, parsed)``: float64 values of the plain decimal fields of ``column``.

    A field ``[-]digits[.digits]`` with at most :data:`MAX_EXACT_DIGITS` digits
    is parsed exactly (see the module docstring); ``parsed`` is False for the
    other fields, whose value is left NaN (parse them with ``float()``).
    """
    lengths = table.lengths[:, column]
    chars = field_bytes(table.buffer, table.starts[:, column], np.minimum(lengths, MAX_EXACT_DIGITS + 2))
    num = len(lengths)
    negative = chars[:, 0] == ord("-")
    width = chars.shape[1]
    inside = np.arange(width)[None, :] < lengths[:, None]
    is_digit = (chars >= ord("0")) & (chars <= ord("9")) & inside
    is_dot = (chars == ord(".")) & inside
    digits = is_digit.sum(axis=1)
    dots = is_dot.sum(axis=1)
    dot_at = np.where(dots > 0, np.argmax(is_dot, axis=1), lengths)
    parsed = ((digits + dots + negative == lengths) & (dots <= 1) & (digits >= 1) & (digits <= MAX_EXACT_DIGITS)
              & (lengths <= MAX_EXACT_DIGITS + 2) & ((dots == 0) | ((dot_at > negative) & (dot_at < lengths - 1))))
    mantissa = np.zeros(num, dtype=np.int64)
    values = chars.astype(np.int64) - ord("0")
    for k in range(width):
        mantissa = np.where(is_digit[:, k], mantissa * 10 + values[:, k], mantissa)
    fraction_digits = np.where(dots > 0, lengths - dot_at - 1, 0)
    result = mantissa.astype(np.float64) / _POWERS_OF_TEN[np.clip(fraction_digits, 0, 18)].astype(np.float64)
    result = np.where(negative, -result, result)
    result[~parsed] = np.nan
    return result, parsed


def scaled_rint(values: np.ndarray, decimals: int) -> Tuple[np.ndarray, np.ndarray]:
    """``rint(x * 10**d)`` (float64) and the indices where it may differ from the digits of ``'%.{d}f' % x``.

    ``'%.{d}f'`` rounds the exact binary value; ``x * 10**d`` rounds once
    more, which can only matter within a few ulps of a half-way point (or for
    huge or non-finite values): those indices are returned.
    """
    values = np.asarray(values, dtype=np.float64)
    scaled = values * 10.0 ** decimals
    with np.errstate(invalid="ignore"):
        distance_to_half = np.abs(scaled - np.floor(scaled) - 0.5)
        risky = ~(distance_to_half > 4 * np.spacing(np.abs(scaled))) | ~(np.abs(scaled) < 2.0 ** 52)
    return np.rint(scaled), np.flatnonzero(risky)


def fixed_decimals(values: np.ndarray, decimals: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(bytes [N, W], lengths)``: ``'%.{decimals}f' % x`` of every value, right-aligned (``decimals >= 1``)."""
    if decimals < 1:
        raise ValueError("fixed_decimals needs at least one decimal")
    values = np.asarray(values, dtype=np.float64)
    scaled, risky = scaled_rint(values, decimals)
    units = np.abs(scaled)
    units[risky] = 0
    units = units.astype(np.int64)
    negative = np.signbit(values)
    text_of = {}
    fmt = f"%.{decimals}f"
    for index in risky.tolist():  # a handful of values: their digits from Python's formatting
        text = fmt % float(values[index])
        text_of[index] = text
    integer_part = units // _POWERS_OF_TEN[decimals]
    integer_digits = np.maximum(1, np.searchsorted(_POWERS_OF_TEN, integer_part, side="right"))
    lengths = negative + integer_digits + 1 + decimals
    for index, text in text_of.items():
        lengths[index] = len(text)
    width = int(lengths.max(initial=1))
    out = np.zeros((len(values), width), dtype=np.uint8)
    rest = units.copy()
    for j in range(width):  # j-th character from the right
        column = width - 1 - j
        if j == decimals:
            out[:, column] = ord(".")
            continue
        digit = (rest % 10).astype(np.uint8) + ord("0")
        rest //= 10
        position = j if j < decimals else j - 1  # digit position in the integer number of units
        is_digit = position < decimals + integer_digits
        out[:, column] = np.where(is_digit, digit, np.where(negative & (j == decimals + integer_digits + 1),
                                                             ord("-"), 0))
    for index, text in text_of.items():
        encoded = text.encode("ascii")
        out[index] = 0
        out[index, width - len(encoded):] = np.frombuffer(encoded, dtype=np.uint8)
    return out, lengths


def join_fields(fields: Sequence[Tuple[np.ndarray, np.ndarray, str]], separator: bytes = b" ",
                end: bytes = b"\n") -> bytes:
    """Lines made of ``fields`` joined by ``separator``, each ended by ``end``.

    Each field is ``(bytes [N, W], lengths, align)`` with ``align`` ``"left"``
    (the field's bytes start at column 0, as :meth:`ByteTable.column_bytes`
    gives) or ``"right"`` (they end at column W-1, as :func:`fixed_decimals`
    gives).
    """
    blocks, masks = [], []
    num = len(fields[0][1])
    for index, (data, lengths, align) in enumerate(fields):
        if index:
            blocks.append(np.broadcast_to(np.frombuffer(separator, np.uint8), (num, len(separator))))
            masks.append(np.ones((num, len(separator)), dtype=bool))
        columns = np.arange(data.shape[1])[None, :]
        lengths = np.asarray(lengths)[:, None]
        blocks.append(data)
        masks.append(columns < lengths if align == "left" else columns >= data.shape[1] - lengths)
    blocks.append(np.broadcast_to(np.frombuffer(end, np.uint8), (num, len(end))))
    masks.append(np.ones((num, len(end)), dtype=bool))
    return np.concatenate(blocks, axis=1)[np.concatenate(masks, axis=1)].tobytes()
