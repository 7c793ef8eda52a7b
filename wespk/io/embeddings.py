"""Embeddings in Kaldi ark/scp form (binary float vectors), via kaldiio."""

import logging
import os
from pathlib import Path
from typing import Dict, Iterable, List, Tuple, Union

import kaldiio
import numpy as np

from wespk.io.files import DataFileError, atomic_output, iter_kaldi_lines

logger = logging.getLogger(__name__)


def write_embeddings(ark_path: Union[str, os.PathLike], scp_path: Union[str, os.PathLike],
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


def read_embeddings(scp_path: Union[str, os.PathLike]) -> Tuple[List[str], np.ndarray]:
    """Read every vector of an scp, in file order, as ``(keys, matrix[N, D])``.

    ``key file.ark:offset`` entries are read through one open handle per ark
    (seek + read); other entries (pipes, ranges) go through kaldiio.
    """
    keys: List[str] = []
    vectors: List[np.ndarray] = []
    handles = {}
    try:
        for line_no, fields in iter_kaldi_lines(scp_path, min_fields=2, max_fields=2):
            location = fields[1]
            try:
                ark, sep, offset = location.rpartition(":")
                if sep and offset.isdigit() and not location.endswith("|"):
                    handle = handles.get(ark)
                    if handle is None:
                        handle = handles[ark] = open(ark, "rb")
                    handle.seek(int(offset))
                    vec = kaldiio.matio.read_kaldi(handle)
                else:
                    vec = kaldiio.load_mat(location)
            except Exception as e:  # kaldiio raises several types for bad offsets / files
                raise DataFileError(scp_path, line_no, f"cannot read {location!r}: {e}") from None
            vec = np.asarray(vec, dtype=np.float32).reshape(-1)
            if vectors and vec.shape != vectors[0].shape:
                raise DataFileError(scp_path, line_no,
                                    f"dimension {vec.shape[0]} differs from the first vector's {vectors[0].shape[0]}")
            keys.append(fields[0])
            vectors.append(vec)
    finally:
        for handle in handles.values():
            handle.close()
    if not vectors:
        raise DataFileError(scp_path, None, "no embeddings")
    return keys, np.stack(vectors)


def read_embedding_dict(scp_path: Union[str, os.PathLike]) -> Dict[str, np.ndarray]:
    """Read an scp into ``{key: vector}``."""
    keys, matrix = read_embeddings(scp_path)
    return dict(zip(keys, matrix))
