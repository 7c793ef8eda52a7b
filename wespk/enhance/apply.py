"""Enhance a file of embeddings: ark/scp in, ark/scp out."""

import logging
import os
import shutil
import time
from typing import Optional

from wespk.enhance.enhancer import load_enhancer
from wespk.io.embeddings import read_embeddings, write_embeddings

logger = logging.getLogger(__name__)


def enhance_embedding_file(enhancer_dir: str, input_scp: str, output_dir: str, seed: int,
                           t: Optional[int] = None, steps: Optional[int] = None, batch_size: int = 1024,
                           backbone_dir: Optional[str] = None, device: str = "cpu") -> int:
    """Write the enhanced embeddings of ``input_scp`` to ``output_dir/xvector.{ark,scp}`` (in input order).

    ``backbone_dir``: the model dir that made the embeddings, checked against
    the one the enhancer was trained for. An ``utt2dur`` next to the input is
    copied along (score calibration reads it). The batch size only trades
    memory for speed: the result does not depend on it. Returns the count.
    """
    keys, matrix = read_embeddings(input_scp)
    enhancer = load_enhancer(enhancer_dir, backbone_dir, device)
    logger.info("enhancing %d embeddings of %s (t = %d, %d step(s), seed %d)", len(keys), input_scp,
                enhancer.t if t is None else t, enhancer.steps if steps is None else steps, seed)
    start = time.time()

    def items():
        for begin in range(0, len(keys), batch_size):
            chunk = keys[begin:begin + batch_size]
            yield from zip(chunk, enhancer.enhance(chunk, matrix[begin:begin + batch_size], seed, t, steps))

    os.makedirs(output_dir, exist_ok=True)
    count = write_embeddings(os.path.join(output_dir, "xvector.ark"), os.path.join(output_dir, "xvector.scp"),
                             items())
    utt2dur = os.path.join(os.path.dirname(os.path.abspath(input_scp)), "utt2dur")
    if os.path.isfile(utt2dur) and os.path.abspath(output_dir) != os.path.dirname(os.path.abspath(input_scp)):
        shutil.copyfile(utt2dur, os.path.join(output_dir, "utt2dur"))
    logger.info("enhanced %d embeddings in %.2f s", count, time.time() - start)
    return count
