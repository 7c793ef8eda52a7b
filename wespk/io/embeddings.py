"""Embeddings in Kaldi ark/scp form (binary float vectors), via kaldiio."""

import logging
import mmap
import os
from pathlib import Path
from typing import BinaryIO, Dict, Iterable, List, Optional, Tuple, Union

import kaldiio
import numpy as np

from wespk.io.files import DataFileError, atomic_output, iter_kaldi_lines

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


def write_embeddings(ark_path: PathLike, scp_path: PathLike,
                     items: Iterable[Tuple[str, np.ndarray]]) -> int:
    """Write ``(key, vector)`` pairs to ``ark_path`` and its index ``scp_path``.

    Both files are written under temporary names and renamed at the end, so
    an interrupted job leaves no partial ark/scp. The scp refers to the ark by
    the path given here (keep it absolute, or relative to where it is read).
    Returns the number of vectors written.
    """
    ark_path, scp_path = Path(ark_path), Path(scp_path)
    lines: List[str] = []
    count = 0
    with atomic_output(ark_path, "wb") as ark:
        for key, vector in items:
            vector = np.asarray(vector, dtype=np.float32)
            if vector.ndim != 1:
                raise ValueError(f"embedding for {key!r} must be 1-D, got shape {vector.shape}")
            if not np.isfinite(vector).all():
                raise ValueError(f"embedding for {key!r} contains NaN or Inf")
            ark.write(f"{key} ".encode("utf-8"))
            offset = ark.tell()
            kaldiio.matio.write_array(ark, vector)
            lines.append(f"{key} {ark_path}:{offset}\n")
            count += 1
    with atomic_output(scp_path) as scp:
        scp.writelines(lines)
    return count


def _parse_scp(scp_path: PathLike) -> Tuple[List[str], List[str], List[int]]:
    """``(keys, locations, line_numbers)`` of a two-column scp; a malformed line is an error naming it."""
    keys: List[str] = []
    locations: List[str] = []
    line_numbers: List[int] = []
    for line_no, fields in iter_kaldi_lines(scp_path, min_fields=2, max_fields=2):
        keys.append(fields[0])
        locations.append(fields[1])
        line_numbers.append(line_no)
    return keys, locations, line_numbers


def _split_ark_offset(location: str) -> Optional[Tuple[str, int]]:
    """``("file.ark", offset)`` for an ``file.ark:offset`` location, else None (pipes, ranges, whole files)."""
    ark, sep, offset = location.rpartition(":")
    if sep and ark and offset.isdigit() and not location.endswith("|"):
        return ark, int(offset)
    return None


#: A binary Kaldi float vector starts with the binary marker, the token "FV " and the size as a 4-byte int32.
_FLOAT_VECTOR_TAG = np.frombuffer(b"\0BFV \x04", dtype=np.uint8)
_FLOAT_VECTOR_HEADER_BYTES = len(_FLOAT_VECTOR_TAG) + 4


def _read_float_vectors(ark_path: str, offsets: np.ndarray) -> Optional[np.ndarray]:
    """The float vectors at ``offsets`` of one ark as a ``[len(offsets), dim]`` float32 matrix.

    The ark is memory-mapped (an scp naming a few entries of a large ark
    touches only their pages), all headers are checked at once and the
    payloads are copied straight into the result. Returns None when any entry
    is not a binary float vector of one common size or lies outside the file;
    the caller then reads the entries one by one through kaldiio, which names
    what is wrong.
    """
    try:
        f = open(ark_path, "rb")
    except OSError:
        return None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size == 0 or len(offsets) == 0 or int(offsets.max()) + _FLOAT_VECTOR_HEADER_BYTES > size:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            data = np.frombuffer(mapped, dtype=np.uint8)
            headers = data[offsets[:, None] + np.arange(_FLOAT_VECTOR_HEADER_BYTES)]
            del data  # the mmap cannot close while an array still exports its buffer
            if not (headers[:, :len(_FLOAT_VECTOR_TAG)] == _FLOAT_VECTOR_TAG).all():
                return None
            sizes = np.ascontiguousarray(headers[:, len(_FLOAT_VECTOR_TAG):]).view("<i4").reshape(-1)
            dim = int(sizes[0])
            nbytes = 4 * dim
            starts = offsets + _FLOAT_VECTOR_HEADER_BYTES
            if dim <= 0 or (sizes != dim).any() or int(starts.max()) + nbytes > size:
                return None
            out = bytearray(len(offsets) * nbytes)
            with memoryview(mapped) as view:
                position = 0
                for start in starts.tolist():
                    out[position:position + nbytes] = view[start:start + nbytes]
                    position += nbytes
    return np.frombuffer(out, dtype="<f4").reshape(len(offsets), dim).astype(np.float32, copy=False)


def read_embeddings(scp_path: PathLike) -> Tuple[List[str], np.ndarray]:
    """Read every vector of an scp, in file order, as ``(keys, matrix[N, D])``.

    ``key file.ark:offset`` entries holding binary float vectors (what wespk,
    WeSpeaker and Kaldi write) are read in one pass over each ark; anything
    else (double vectors, pipes, ranges) goes through kaldiio entry by entry.
    An unreadable entry or a vector whose size differs from the first one's
    is an error naming the scp line.
    """
    keys, locations, line_numbers = _parse_scp(scp_path)
    if not keys:
        raise DataFileError(scp_path, None, "no embeddings")
    by_ark: Dict[str, Tuple[List[int], List[int]]] = {}
    slow_rows: List[int] = []
    for row, location in enumerate(locations):
        split = _split_ark_offset(location)
        if split is None:
            slow_rows.append(row)
        else:
            rows, offsets = by_ark.setdefault(split[0], ([], []))
            rows.append(row)
            offsets.append(split[1])
    blocks: List[Tuple[List[int], np.ndarray]] = []
    for ark, (rows, offsets) in by_ark.items():
        block = _read_float_vectors(ark, np.asarray(offsets, dtype=np.int64))
        if block is None:
            slow_rows.extend(rows)
        else:
            blocks.append((rows, block))
    slow_rows.sort()
    slow_vectors: List[np.ndarray] = []
    handles: Dict[str, BinaryIO] = {}
    try:
        for row in slow_rows:
            location = locations[row]
            try:
                split = _split_ark_offset(location)
                if split is None:
                    vec = kaldiio.load_mat(location)
                else:
                    handle = handles.get(split[0])
                    if handle is None:
                        handle = handles[split[0]] = open(split[0], "rb")
                    handle.seek(split[1])
                    vec = kaldiio.matio.read_kaldi(handle)
            except Exception as e:  # kaldiio raises several types for bad offsets / files
                raise DataFileError(scp_path, line_numbers[row], f"cannot read {location!r}: {e}") from None
            slow_vectors.append(np.asarray(vec, dtype=np.float32).reshape(-1))
    finally:
        for handle in handles.values():
            handle.close()

    dims = np.empty(len(keys), dtype=np.int64)
    for rows, block in blocks:
        dims[rows] = block.shape[1]
    for row, vec in zip(slow_rows, slow_vectors):
        dims[row] = vec.shape[0]
    wrong = np.flatnonzero(dims != dims[0])
    if len(wrong):
        row = int(wrong[0])
        raise DataFileError(scp_path, line_numbers[row],
                            f"dimension {int(dims[row])} differs from the first vector's {int(dims[0])}")
    if len(blocks) == 1 and not slow_rows:  # the usual case: one ark, read in scp order
        return keys, blocks[0][1]
    matrix = np.empty((len(keys), int(dims[0])), dtype=np.float32)
    for rows, block in blocks:
        matrix[rows] = block
    if slow_rows:
        matrix[slow_rows] = np.stack(slow_vectors)
    return keys, matrix


def read_embedding_dict(scp_path: PathLike) -> Dict[str, np.ndarray]:
    """Read an scp into ``{key: vector}``."""
    keys, matrix = read_embeddings(scp_path)
    return dict(zip(keys, matrix))
