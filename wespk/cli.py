"""The ``wespk`` command: embed, compare, verify, extract, enroll and identify speakers.

::

    wespk embed      --model DIR FILE... [-o out.npy|out.ark]
    wespk similarity --model DIR A B
    wespk verify     --model DIR --enroll A [A2 ...] --test B [--threshold T]
    wespk extract    --model DIR --wav-scp wav.scp --out DIR [--nj N] [--format ark|npy]
    wespk enroll     --model DIR --db speakers.json NAME FILE...
    wespk identify   --model DIR --db speakers.json FILE [--threshold T]
    wespk diarize    --model DIR FILE... [--num_speakers N] [-o out.rttm]

``--model`` (default ``$WESPK_MODEL``) is a model dir: ``config.yaml`` with
``avg_model.pt`` (or ``models/avg_model.pt``), or with an exported
``final.onnx`` / TorchScript ``final.pt``. Audio of any sample rate and
channel count is resampled and down-mixed (with a note on stderr). Results
go to stdout; notes and errors to stderr. An error is one line and a
non-zero exit status (``--debug`` shows the traceback instead).
"""

import argparse
import logging
import os
import sys
import warnings
from typing import Callable, Dict, List, Optional

import numpy as np

from wespk.api import BACKEND_CHOICES, SpeakerEmbedder, SpeakerManager, cosine_similarity, load_model
from wespk.utils.trust_option import add_trust_checkpoint_option

logger = logging.getLogger(__name__)

PROG = "wespk"


class CommandError(RuntimeError):
    """A user error found by the command itself (bad option combination, bad output name)."""


def _one_line(error: BaseException) -> str:
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    text = " ".join(str(text).split())
    return text or type(error).__name__


class _Reporter:
    """Notes on stderr (kept clear of progress bars); silenced by ``--quiet``."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def note(self, message: str) -> None:
        if self.quiet:
            return
        from tqdm import tqdm
        tqdm.write(f"{PROG}: note: {message}", file=sys.stderr)


def _load(args: argparse.Namespace, reporter: _Reporter) -> SpeakerEmbedder:
    if not args.model:
        raise CommandError("no model: pass --model DIR (a dir with config.yaml and avg_model.pt or final.onnx) "
                           "or set WESPK_MODEL")
    return load_model(args.model, device=args.device, backend=args.backend, batch_size=args.batch_size,
                      note=reporter.note, trust_checkpoint=args.trust_checkpoint, enhancer=args.enhancer,
                      enhance_seed=args.enhance_seed)


def _check_files(paths: List[str]) -> None:
    """Missing and undecodable files are reported before the model is loaded."""
    import soundfile
    from wespk.io.audio import AudioError
    for path in paths:
        if not os.path.isfile(path):
            raise CommandError(f"{path}: file not found")
        try:
            soundfile.info(path)
        except (RuntimeError, soundfile.LibsndfileError) as e:
            raise AudioError(f"{path}: cannot decode audio ({e})") from None


# ----------------------------------------------------------------- commands

def cmd_embed(args: argparse.Namespace, reporter: _Reporter) -> int:
    _check_files(args.files)
    output = args.output
    if output is not None and not output.endswith((".npy", ".ark")):
        raise CommandError(f"{output}: the output must end in .npy (matrix) or .ark (Kaldi ark + scp)")
    if output is not None and output.endswith(".ark"):
        spaced = [f for f in args.files if len(f.split()) != 1]
        if spaced:
            raise CommandError(f"{spaced[0]!r}: a Kaldi key (the file name) cannot contain whitespace")
    embedder = _load(args, reporter)
    matrix = embedder.embed_batch(args.files, progress=True)
    if output is None:
        for path, vector in zip(args.files, matrix):
            sys.stdout.write(f"{path}  [ {' '.join(f'{v:.8g}' for v in vector)} ]\n")
        return 0
    if output.endswith(".npy"):
        from wespk.io.files import atomic_output
        with atomic_output(output, "wb") as f:
            np.save(f, matrix.astype(np.float32))
        reporter.note(f"wrote {matrix.shape[0]} x {matrix.shape[1]} embeddings to {output} (rows in FILE order)")
    else:
        from wespk.io.embeddings import write_embeddings
        scp = output[: -len(".ark")] + ".scp"
        write_embeddings(output, scp, zip(args.files, matrix))
        reporter.note(f"wrote {matrix.shape[0]} embeddings to {output} and {scp}")
    return 0


def cmd_similarity(args: argparse.Namespace, reporter: _Reporter) -> int:
    _check_files([args.a, args.b])
    embedder = _load(args, reporter)
    first, second = embedder.embed_batch([args.a, args.b])
    print(f"{cosine_similarity(first, second):.6f}")
    return 0


def cmd_verify(args: argparse.Namespace, reporter: _Reporter) -> int:
    from wespk.scoring.calibrator import CalibrationError, load_score_calibrator
    _check_files(args.enroll + [args.test])
    embedder = _load(args, reporter)
    vectors = embedder.embed_batch(args.enroll + [args.test], progress=True)
    enroll = vectors[:-1].astype(np.float64).mean(axis=0)
    score = cosine_similarity(enroll, vectors[-1])
    try:
        calibrator = load_score_calibrator(embedder.model.model_dir)
    except CalibrationError as e:
        reporter.note(f"{_one_line(e)}; no calibrated score")
        calibrator = None
    print(f"score: {score:.4f}")
    llr = None
    if calibrator is not None:
        llr = calibrator.calibrate(score)
        print(f"calibrated: {llr:.4f} (log-likelihood ratio; {os.path.basename(calibrator.source)})")
    threshold = args.threshold
    if threshold is None and llr is None and calibrator is not None:
        threshold = calibrator.threshold
    if threshold is not None:
        same = score >= threshold
        print(f"decision: {'same speaker' if same else 'different speakers'} "
              f"(score {score:.4f} {'>=' if same else '<'} threshold {threshold:g})")
    elif llr is not None:
        same = llr >= 0.0
        print(f"decision: {'same speaker' if same else 'different speakers'} "
              f"(calibrated {llr:.4f} {'>=' if same else '<'} 0)")
    else:
        print("decision: none (pass --threshold T; this model dir has no calibration)")
    return 0


def cmd_extract(args: argparse.Namespace, reporter: _Reporter) -> int:
    from wespk.inference.extractor import extract_embeddings
    if not args.model:
        _load(args, reporter)  # raises the missing-model error
    if not os.path.exists(args.wav_scp):
        raise CommandError(f"{args.wav_scp}: file not found")
    if args.nj < 1:
        raise CommandError(f"--nj must be at least 1, got {args.nj}")
    postprocess = None
    if args.enhancer:
        from wespk.enhance.enhancer import EnhancementStep
        postprocess = EnhancementStep(args.enhancer, args.enhance_seed, model_dir=args.model, device=args.device)
    count = extract_embeddings(args.wav_scp, args.model, args.out, nj=args.nj, batch_size=args.batch_size,
                               device=args.device, strict=args.strict, trust_checkpoint=args.trust_checkpoint,
                               backend=args.backend, format=args.format, progress=not args.quiet,
                               postprocess=postprocess)
    index = "npy.scp" if args.format == "npy" else "xvector.scp"
    print(f"wrote {count} embeddings to {os.path.join(args.out, index)}")
    return 0


def cmd_enroll(args: argparse.Namespace, reporter: _Reporter) -> int:
    _check_files(args.files)
    embedder = _load(args, reporter)
    manager = SpeakerManager.load(args.db, embedder) if os.path.exists(args.db) else SpeakerManager(embedder)
    vectors = embedder.embed_batch(args.files, progress=True)
    count = manager.add(args.name, list(vectors))
    manager.save(args.db)
    print(f"enrolled {args.name}: {len(args.files)} file(s), {count} enrollment(s) in all; "
          f"{args.db} holds {len(manager)} speaker(s)")
    return 0


def cmd_identify(args: argparse.Namespace, reporter: _Reporter) -> int:
    from wespk.scoring.calibrator import CalibrationError, load_score_calibrator
    _check_files([args.file])
    if not os.path.isfile(args.db):
        raise CommandError(f"{args.db}: speaker database not found (create it with wespk enroll)")
    embedder = _load(args, reporter)
    manager = SpeakerManager.load(args.db, embedder)
    if len(manager) == 0:
        raise CommandError(f"{args.db}: no speakers enrolled")
    results = manager.scores(embedder.embed(args.file))
    threshold = args.threshold
    if threshold is None:
        try:
            calibrator = load_score_calibrator(embedder.model.model_dir)
        except CalibrationError:
            calibrator = None
        threshold = calibrator.threshold if calibrator is not None else None
    if threshold is None:
        reporter.note(f"no --threshold: listing the {min(args.top, len(results))} best-scoring speaker(s)")
        for name, score in results[: args.top]:
            print(f"{name} {score:.4f}")
        return 0
    matches = [(name, score) for name, score in results if score >= threshold][: args.top]
    if not matches:
        best_name, best_score = results[0]
        print(f"no match (best {best_name} {best_score:.4f} < threshold {threshold:g})")
    for name, score in matches:
        print(f"{name} {score:.4f}")
    return 0


def cmd_diarize(args: argparse.Namespace, reporter: _Reporter) -> int:
    from wespk.bin.diarize import diarization_config
    from wespk.diarization.rttm import format_rttm_line, write_rttm
    from wespk.diarization.runner import diarize_files
    if not args.model:
        raise CommandError("no model: pass --model DIR (a dir with config.yaml and avg_model.pt) or set WESPK_MODEL")
    if args.backend not in ("auto", "torch"):
        raise CommandError(f"diarize runs the torch model of a model dir, not --backend {args.backend}")
    _check_files(args.files)
    turns = diarize_files(args.model, args.files, diarization_config(args), device=args.device,
                          trust_checkpoint=args.trust_checkpoint, note=reporter.note)
    if args.output:
        write_rttm(args.output, turns)
        reporter.note(f"wrote {len(turns)} turns to {args.output}")
    else:
        sys.stdout.writelines(format_rttm_line(t) for t in turns)
    return 0


COMMANDS: Dict[str, Callable[[argparse.Namespace, _Reporter], int]] = {
    "embed": cmd_embed, "similarity": cmd_similarity, "verify": cmd_verify,
    "extract": cmd_extract, "enroll": cmd_enroll, "identify": cmd_identify,
    "diarize": cmd_diarize,
}


# ----------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    model = common.add_argument_group("model")
    model.add_argument("--model", metavar="DIR", default=os.environ.get("WESPK_MODEL"),
                       help="model dir: config.yaml + avg_model.pt (or final.onnx / TorchScript final.pt); "
                            "default $WESPK_MODEL")
    model.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                       help="torch, onnx, jit, or auto (the first the model dir has, in that order)")
    model.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (torch and jit backends)")
    model.add_argument("--batch-size", type=int, default=16, help="utterances per forward pass (default 16)")
    add_trust_checkpoint_option(model, "a PyTorch model file", "--trust-checkpoint", "--trust_checkpoint")
    model.add_argument("--enhancer", metavar="DIR", default=None,
                       help="SEED enhancer dir trained for this model: enhance every embedding (docs/enhance.md)")
    model.add_argument("--enhance-seed", "--enhance_seed", dest="enhance_seed", type=int, default=0,
                       help="seed of the enhancer's per-key noise (default 0)")
    output = common.add_argument_group("messages")
    output.add_argument("-q", "--quiet", action="store_true", help="no notes on stderr")
    output.add_argument("-v", "--verbose", action="store_true", help="log progress and library warnings")
    output.add_argument("--debug", action="store_true", help="show the traceback of an error")

    parser = argparse.ArgumentParser(prog=PROG, description="Speaker embeddings from the command line: "
                                     "embed, compare, verify, extract, enroll and identify speakers.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2].replace("::\n\n", "").replace("``", ""))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    embed = commands.add_parser("embed", parents=[common], help="embed audio files",
                                description="Embed audio files: Kaldi text vectors on stdout, or -o out.npy / out.ark")
    embed.add_argument("files", nargs="+", metavar="FILE")
    embed.add_argument("-o", "--output", metavar="OUT",
                       help="out.npy (one row per FILE, in order) or out.ark (+ out.scp, keys = FILE)")

    similarity = commands.add_parser("similarity", parents=[common], help="cosine similarity of two files",
                                     description="Print the cosine similarity of two audio files' embeddings")
    similarity.add_argument("a", metavar="A")
    similarity.add_argument("b", metavar="B")

    verify = commands.add_parser("verify", parents=[common], help="is the test file the enrolled speaker?",
                                 description="Score a test file against the mean embedding of enrollment files; "
                                             "print the score, the calibrated score (when the model dir has "
                                             "calibration.json or a score-only qmf_model.pt) and the decision")
    verify.add_argument("--enroll", nargs="+", required=True, metavar="FILE", help="enrollment audio")
    verify.add_argument("--test", required=True, metavar="FILE", help="test audio")
    verify.add_argument("--threshold", type=float, default=None,
                        help="cosine threshold for the decision (default: calibrated score >= 0, "
                             "or calibration.json's threshold)")

    extract = commands.add_parser("extract", parents=[common], help="embed a wav.scp into xvector.ark/scp",
                                  description="Embed every utterance of a wav.scp (or data dir / raw list) "
                                              "into OUT/xvector.ark and OUT/xvector.scp (or, with --format npy, "
                                              "one .npy per utterance)")
    extract.add_argument("--wav-scp", "--data", dest="wav_scp", required=True, metavar="S",
                         help="wav.scp, Kaldi data dir or raw list")
    extract.add_argument("--out", required=True, metavar="DIR", help="output dir")
    extract.add_argument("--nj", type=int, default=1, help="parallel jobs (processes)")
    extract.add_argument("--format", choices=("ark", "npy"), default="ark",
                         help="ark: OUT/xvector.{ark,scp} (default); npy: one OUT/<path>.npy per utterance, "
                              "mirroring the audio paths (segments and pipes: OUT/<key>.npy), indexed by OUT/npy.scp")
    extract.add_argument("--strict", action="store_true", help="stop at the first bad utterance")

    enroll = commands.add_parser("enroll", parents=[common], help="add a speaker to a speaker database",
                                 description="Enroll NAME from audio files into a speaker database "
                                             "(.json or .npz; created if missing; enrollments are averaged)")
    enroll.add_argument("--db", required=True, metavar="DB", help="speaker database file (.json or .npz)")
    enroll.add_argument("name", metavar="NAME")
    enroll.add_argument("files", nargs="+", metavar="FILE")

    identify = commands.add_parser("identify", parents=[common], help="who in the database is speaking?",
                                   description="Score an audio file against every enrolled speaker")
    identify.add_argument("--db", required=True, metavar="DB", help="speaker database file (.json or .npz)")
    identify.add_argument("file", metavar="FILE")
    identify.add_argument("--threshold", type=float, default=None,
                          help="cosine threshold; print the speakers above it (default: list the best)")
    identify.add_argument("--top", type=int, default=5, help="at most this many speakers (default 5)")

    from wespk.bin.diarize import add_diarization_options
    diarize = commands.add_parser("diarize", parents=[common], help="who spoke when? (RTTM)",
                                  description="Diarize audio files: NIST RTTM on stdout (or -o out.rttm); "
                                              "see docs/diarization.md")
    diarize.add_argument("files", nargs="+", metavar="FILE")
    diarize.add_argument("-o", "--output", metavar="OUT", help="write the RTTM here instead of stdout")
    add_diarization_options(diarize, model_options=False)
    return parser


def _configure_messages(args: argparse.Namespace) -> None:
    """Log records as ``wespk: LEVEL: message`` on stderr; Python warnings off unless -v/--debug."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if args.verbose else logging.WARNING)
    if not (args.verbose or args.debug):
        warnings.simplefilter("ignore")


def run(args: argparse.Namespace) -> int:
    """Run a parsed command; every failure becomes one line on stderr and status 1 (unless --debug)."""
    reporter = _Reporter(args.quiet)
    try:
        if args.batch_size < 1:
            raise CommandError(f"--batch-size must be at least 1, got {args.batch_size}")
        return COMMANDS[args.command](args, reporter)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as e:  # every failure is one line unless --debug
        if args.debug:
            raise
        print(f"{PROG} {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 1


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``wespk`` console script; returns the exit status.

    Logging and warning settings are restored on return, so ``main`` can be
    called from Python (and from tests) without side effects.
    """
    args = build_parser().parse_args(argv)
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    with warnings.catch_warnings():
        _configure_messages(args)
        try:
            return run(args)
        finally:
            for handler in list(root.handlers):
                root.removeHandler(handler)
            for handler in saved_handlers:
                root.addHandler(handler)
            root.setLevel(saved_level)


if __name__ == "__main__":
    sys.exit(main())
