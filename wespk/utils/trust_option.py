"""The ``--trust_checkpoint`` option, the same in every entry point that reads a checkpoint.

Kept apart from :mod:`wespk.io.checkpoint` (which imports torch) so that
command-line parsers can add it without loading torch.
"""

import argparse


def add_trust_checkpoint_option(parser: argparse.ArgumentParser, what: str = "the model file",
                                *names: str) -> None:
    """Add ``--trust_checkpoint`` (or ``names``) to ``parser``, stored as ``trust_checkpoint``.

    ``what`` names the files it applies to in the help text.
    """
    parser.add_argument(*(names or ("--trust_checkpoint",)), dest="trust_checkpoint", action="store_true",
                        help=f"also accept in {what} the data-only objects other trainers store beside the "
                             f"weights (an argparse.Namespace of options, numpy scalars); checkpoints are "
                             f"always read as weights only and never run code, with or without this flag")
