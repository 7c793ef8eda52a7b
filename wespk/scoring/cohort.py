"""Per-speaker mean embeddings, used as the cohort of S-norm / AS-norm.

Same numerics as WeSpeaker's ``tools/vector_mean.py``: each speaker's vector
is the float32 sum of its utterance embeddings, added in ``spk2utt`` order,
divided by the number of utterances. Speakers are written in ``spk2utt``
order.
"""

import logging
import os
from typing import List, Mapping, Sequence, Tuple, Union

import numpy as np

from wespk.io.files import DataFileError

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


def speaker_means(spk2utt: Mapping[str, Sequence[str]], row_of: Mapping[str, int], matrix: np.ndarray,
                  spk2utt_path: PathLike = "spk2utt", source: str = "embeddings") -> List[Tuple[str, np.ndarray]]:
    """Mean embedding of every speaker of ``spk2utt``, as ``(speaker, float32 vector)`` pairs.

    ``row_of`` maps utterance keys to rows of ``matrix``. An utterance with no
    embedding is an error naming the speaker and ``spk2utt_path``.
    """
    matrix = np.asarray(matrix, dtype=np.float32)
    means: List[Tuple[str, np.ndarray]] = []
    for speaker, utts in spk2utt.items():
        if not utts:
            raise DataFileError(spk2utt_path, None, f"speaker {speaker!r} has no utterances")
        try:
            rows = [row_of[utt] for utt in utts]
        except KeyError as e:
            raise DataFileError(spk2utt_path, None,
                                f"utterance {e.args[0]!r} of speaker {speaker!r} has no embedding in {source}") from None
        total = np.zeros(matrix.shape[1], dtype=np.float32)
        for row in rows:
            total += matrix[row]
        means.append((speaker, total / np.float32(len(rows))))
    logger.info("computed %d speaker means from %d utterances", len(means), sum(len(u) for u in spk2utt.values()))
    return means

