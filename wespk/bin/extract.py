"""Extract speaker embeddings into ``OUT_DIR/xvector.{ark,scp}`` (or one ``.npy`` per utterance).

``python -m wespk.bin.extract --model_dir EXP --data data/test --out_dir EXP/embeddings/test --nj 4``

``--data`` is a Kaldi data dir (wav.scp [+ segments, utt2dur]), a wav.scp or
a raw list. The model dir holds config.yaml and models/avg_model.pt, or an
exported final.onnx / TorchScript final.pt (``--backend``; or give
``--checkpoint``). Unreadable or too-short utterances are skipped with a
warning and listed in ``OUT_DIR/skipped`` (``--strict`` makes them errors).
``--format npy`` writes ``OUT_DIR/<path>.npy`` mirroring each audio file's
path below the files' common directory (segments, pipes and shard members:
``OUT_DIR/<key>.npy``), indexed by ``OUT_DIR/npy.scp``.
"""

import argparse
import logging
import sys

from wespk.inference.extractor import DEFAULT_MAX_PADDING, OUTPUT_FORMATS, PRECISIONS, extract_embeddings
from wespk.inference.model_dir import BACKEND_CHOICES
from wespk.utils.logs import setup_logging
from wespk.utils.malloc import keep_large_allocations_in_heap
from wespk.utils.trust_option import add_trust_checkpoint_option

logger = logging.getLogger("wespk.bin.extract")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", required=True, help="dir with config.yaml and (models/)avg_model.pt")
    parser.add_argument("--checkpoint", default=None, help="model file (default: the model dir's avg_model.pt)")
    parser.add_argument("--data", required=True, help="data dir, wav.scp or raw list")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--backend", default="auto", choices=list(BACKEND_CHOICES),
                        help="torch (avg_model.pt), onnx (final.onnx), jit (TorchScript final.pt), or auto: "
                             "the first of these the model dir has (default)")
    parser.add_argument("--format", default="ark", choices=list(OUTPUT_FORMATS),
                        help="ark: xvector.{ark,scp} (default); npy: one .npy per utterance in a tree mirroring "
                             "the audio paths (segments and pipes: <key>.npy), indexed by npy.scp")
    parser.add_argument("--nj", type=int, default=1, help="parallel jobs")
    parser.add_argument("--batch_size", type=int, default=16, help="utterances per batch at most (default 16)")
    parser.add_argument("--max_padding", type=float, default=DEFAULT_MAX_PADDING,
                        help="start a new batch rather than pad a batch by more than this fraction of its "
                             "audio (default %(default)s)")
    parser.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                        help="fp32 (default), or bf16 / fp16 autocast: faster on CPUs with bf16 support and on GPUs, "
                             "embeddings within cosine 0.999 of fp32")
    parser.add_argument("--no_optimize", action="store_true",
                        help="run the model exactly as loaded (no batch-norm folding, no channels-last layout)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (jobs spread over GPUs)")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad utterance")
    add_trust_checkpoint_option(parser, "the model file")
    parser.add_argument("--enhancer", default=None,
                        help="SEED enhancer dir trained for this model (docs/enhance.md): write enhanced embeddings")
    parser.add_argument("--enhance_seed", type=int, default=0, help="seed of the enhancer's per-key noise (default 0)")
    args = parser.parse_args(argv)
    setup_logging()
    keep_large_allocations_in_heap()
    try:
        postprocess = None
        if args.enhancer:
            from wespk.enhance.enhancer import EnhancementStep
            postprocess = EnhancementStep(args.enhancer, args.enhance_seed, model_dir=args.model_dir,
                                          device=args.device)
        count = extract_embeddings(args.data, args.model_dir, args.out_dir, nj=args.nj,
                                   batch_size=args.batch_size, device=args.device,
                                   checkpoint=args.checkpoint, strict=args.strict, precision=args.precision,
                                   max_padding=args.max_padding, optimize=not args.no_optimize,
                                   trust_checkpoint=args.trust_checkpoint, backend=args.backend,
                                   format=args.format, postprocess=postprocess)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"wespk.bin.extract: {e}", file=sys.stderr)
        return 1
    logger.info("wrote %d embeddings to %s/%s", count, args.out_dir,
                "npy.scp" if args.format == "npy" else "xvector.scp")
    return 0


if __name__ == "__main__":
    sys.exit(main())
