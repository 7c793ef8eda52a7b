"""Logging setup with rank-0 filtering done in one place."""

import logging
import os
import sys
from typing import Optional

FORMAT = "%(asctime)s %(levelname)s [%(name)s:%(lineno)d] %(message)s"


def setup_logging(rank: int = 0, log_file: Optional[str] = None, level: int = logging.INFO,
                  all_ranks: bool = False) -> None:
    """Configure the root logger.

    Rank 0 logs at ``level`` to stderr (and ``log_file``, appended); other
    ranks log warnings and errors only, prefixed with their rank, unless
    ``all_ranks``.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = FORMAT if rank == 0 else f"[rank {rank}] " + FORMAT
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter(fmt))
    root.addHandler(stream)
    if log_file and rank == 0:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        file_handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(file_handler)
    root.setLevel(level if (rank == 0 or all_ranks) else logging.WARNING)
