"""Inspect and convert checkpoints: key prefixes, parameter counts, model dirs.

Usage::

    python -m wespk.bin.checkpoint_tool analyze CKPT
    python -m wespk.bin.checkpoint_tool strip-prefix CKPT OUT [--prefix module.]
    python -m wespk.bin.checkpoint_tool add-prefix CKPT OUT [--prefix module.]
    python -m wespk.bin.checkpoint_tool replace-prefix CKPT OUT --old A --new B
    python -m wespk.bin.checkpoint_tool convert-wespeaker CKPT OUT_DIR --config CONFIG.yaml
    python -m wespk.bin.checkpoint_tool convert-resemblyzer OUT_DIR [--from pretrained.pt]
    python -m wespk.bin.checkpoint_tool convert-ssl WAVLM.pt OUT_DIR

Prefix commands rewrite the keys of the checkpoint's state_dict and write
it back in the same container (a training checkpoint keeps its optimizer
state). ``convert-wespeaker`` and ``convert-resemblyzer`` write a model dir
(``config.yaml`` + ``avg_model.pt``) usable with ``--model``. Errors are
one line on stderr and exit status 1. Checkpoints are read without running
code (``torch.load(weights_only=True)``); ``--trust_checkpoint`` lifts that
for a file that needs it, and runs whatever code the file carries.
"""

import argparse
import logging
import sys
from typing import List, Optional

from wespk.io.config import ConfigError
from wespk.io.checkpoint import CheckpointError
from wespk.models.checkpoint_tools import (add_prefix, analyze_state_dict, convert_wespeaker_checkpoint,
                                           format_analysis, read_checkpoint, replace_prefix,
                                           save_checkpoint_like, strip_prefix)
from wespk.utils.logs import setup_logging
from wespk.utils.trust_option import add_trust_checkpoint_option

logger = logging.getLogger(__name__)

PROG = "checkpoint_tool"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m wespk.bin.{PROG}",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    reading = argparse.ArgumentParser(add_help=False)
    add_trust_checkpoint_option(reading, "the checkpoint")

    p = sub.add_parser("analyze", parents=[reading], help="key prefixes, parameter counts per module, dtypes")
    p.add_argument("checkpoint")

    p = sub.add_parser("strip-prefix", parents=[reading], help="remove a prefix from the keys that have it")
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--prefix", default="module.", help="default: module.")

    p = sub.add_parser("add-prefix", parents=[reading], help="put a prefix in front of every key")
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--prefix", default="module.", help="default: module.")

    p = sub.add_parser("replace-prefix", parents=[reading], help="replace a leading key prefix by another")
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--old", required=True, help="prefix to replace")
    p.add_argument("--new", required=True, help="replacement (may be empty: --new '')")

    p = sub.add_parser("convert-wespeaker", parents=[reading],
                       help="WeSpeaker checkpoint + config -> wespk model dir")
    p.add_argument("checkpoint")
    p.add_argument("out_dir")
    p.add_argument("--config", required=True, help="the WeSpeaker training config (config.yaml)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="do not build the model to check that the weights fit it")

    p = sub.add_parser("convert-resemblyzer", parents=[reading],
                       help="resemblyzer's pretrained GE2E encoder -> wespk model dir")
    p.add_argument("out_dir")
    p.add_argument("--from", dest="weights", default=None,
                   help="resemblyzer's pretrained.pt (default: the installed resemblyzer package's)")

    p = sub.add_parser("convert-ssl", help="official / s3prl WavLM checkpoint -> HuggingFace model dir")
    p.add_argument("checkpoint", help="a WavLM .pt holding {'cfg': ..., 'model': ...}")
    p.add_argument("out_dir")
    return parser


def _rewrite(args, rename) -> int:
    loaded = read_checkpoint(args.checkpoint, args.trust_checkpoint)
    try:
        state_dict = rename(loaded.state_dict)
    except ValueError as e:
        raise CheckpointError(f"{args.checkpoint}: {e}") from None
    save_checkpoint_like(loaded, state_dict, args.out)
    print(f"{args.out}: {len(state_dict)} keys (first: {next(iter(state_dict), 'none')})")
    return 0


def run(args) -> int:
    if args.command == "analyze":
        loaded = read_checkpoint(args.checkpoint, args.trust_checkpoint)
        print(format_analysis(loaded, analyze_state_dict(loaded.state_dict)))
        return 0
    if args.command == "strip-prefix":
        return _rewrite(args, lambda sd: strip_prefix(sd, args.prefix))
    if args.command == "add-prefix":
        return _rewrite(args, lambda sd: add_prefix(sd, args.prefix))
    if args.command == "replace-prefix":
        return _rewrite(args, lambda sd: replace_prefix(sd, args.old, args.new))
    if args.command == "convert-wespeaker":
        config_path, model_path = convert_wespeaker_checkpoint(args.checkpoint, args.out_dir, args.config,
                                                               verify=args.verify, trust=args.trust_checkpoint)
        print(f"wrote {config_path} and {model_path}")
        return 0
    if args.command == "convert-resemblyzer":
        from wespk.pretrained.resemblyzer import convert_resemblyzer
        paths = convert_resemblyzer(args.out_dir, args.weights, trust=args.trust_checkpoint)
        print(f"wrote {paths['config']}, {paths['model']} and {paths['readme']}")
        return 0
    if args.command == "convert-ssl":
        from wespk.frontends.convert import convert_wavlm_checkpoint
        summary = convert_wavlm_checkpoint(args.checkpoint, args.out_dir)
        print(f"wrote {summary['out_dir']}: WavLM with {summary['layers']} layers of {summary['hidden_size']} "
              f"dims, {summary['parameters']} tensors, do_normalize {summary['normalize']}")
        return 0
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(level=logging.WARNING)
    try:
        return run(args)
    except (CheckpointError, ConfigError, ValueError, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
