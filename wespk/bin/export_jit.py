"""Export a model dir's speaker encoder to TorchScript and check it against PyTorch.

``python -m wespk.bin.export_jit --model_dir EXP --output EXP/models/final.pt [--check_wav WAV]``

The saved module's ``forward(feats [B, T, F], lengths=None)`` returns the
embedding [B, D] (``torch.jit.load`` it; no wespk needed). RepVGG is fused
into its deploy form first. Its embeddings of ``--check_wav`` (default: a
bundled test utterance) alone and in a padded batch must equal PyTorch's
within ``--tolerance`` (1e-4); otherwise nothing is written and the exit
status is 1. A copy of config.yaml is written next to the output.
"""

import argparse
import logging
import sys

from wespk.export.jit_export import export_model_dir_to_torchscript
from wespk.export.parity import DEFAULT_TOLERANCE, ParityError
from wespk.utils.logs import setup_logging
from wespk.utils.trust_option import add_trust_checkpoint_option

logger = logging.getLogger("wespk.bin.export_jit")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", required=True, help="dir with config.yaml and (models/)avg_model.pt")
    parser.add_argument("--output", required=True, help="the TorchScript .pt file to write")
    parser.add_argument("--checkpoint", default=None, help="model file (default: the model dir's avg_model.pt)")
    parser.add_argument("--check_wav", default=None, help="audio for the parity check (default: bundled test audio)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"largest allowed abs difference from PyTorch (default {DEFAULT_TOLERANCE:g})")
    add_trust_checkpoint_option(parser, "the model file")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        report = export_model_dir_to_torchscript(args.model_dir, args.output, check_wav=args.check_wav,
                                                 checkpoint=args.checkpoint, tolerance=args.tolerance,
                                                 trust_checkpoint=args.trust_checkpoint)
    except ParityError as e:
        print(f"wespk.bin.export_jit: {e}; {args.output} not written", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, OSError, ImportError) as e:
        print(f"wespk.bin.export_jit: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    logger.info("%s: parity max abs difference %.2e", args.output, report.max_abs_diff)
    return 0


if __name__ == "__main__":
    sys.exit(main())
