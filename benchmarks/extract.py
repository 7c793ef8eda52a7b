"""CPU extraction speed: eager PyTorch vs TorchScript vs ONNX Runtime (and bf16 autocast).

``python -m benchmarks.extract [--models ResNet34 GE2E] [--threads 2] [--batch_size 16]
[--seconds 4] [--repeats 5] [--e2e_utts 32] [--json OUT.json]``

Models:

* ``ResNet34``: random weights (80-dim fbank, 256-dim embedding), batch-norm
  statistics set from the benchmark audio so activations have trained-model
  scales; timing does not depend on the weights.
* ``GE2E``: the real pretrained resemblyzer encoder, converted with
  :func:`wespk.pretrained.resemblyzer.convert_resemblyzer` (skipped when the
  resemblyzer package is not installed).

The model dir is exported to ONNX and TorchScript (each export passes its
parity check), then the encoder alone is timed on features of real speech:
one ``--seconds`` utterance at a time and a batch of ``--batch_size`` such
utterances, for eager fp32 with the model as loaded (the baseline), eager
fp32 as extraction runs it (the inference copy of
:mod:`wespk.inference.optimize`), eager under bf16 autocast, TorchScript and
ONNX Runtime. End to end (audio files to ``xvector.ark``) is timed over
``--e2e_utts`` bundled test files: the baseline is
:func:`wespk.inference.extractor.extract_embeddings` with the model as loaded
and length-sorted batches of ``--batch_size`` however much they pad; then the
same function with its defaults (inference copy, padding bounded), with
``precision="bf16"``, and the exported models through
:meth:`wespk.api.SpeakerEmbedder.extract_to_ark`.

Timing is made robust to other load on the machine: after warm-up runs
(which also let oneDNN and ONNX Runtime build their kernels for the shapes),
the paths are run in turn, round after round (``--repeats`` rounds; 2 for end
to end), and each path's best time is reported, so a burst of load hurts all
paths alike and the minimum approaches the unloaded time. Like
``python -m wespk.bin.extract``, the benchmark process keeps large buffers in
the heap (:mod:`wespk.utils.malloc`), for every path alike.

Every figure is also given as a speed-up over the first row (the baseline)
measured in the same run, and every path's embeddings are compared with the
baseline's by cosine, which must be at least ``--min_cosine`` (0.999);
otherwise the exit status is 1. RTF = processing time / audio duration.
"""

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from benchmarks.timing import cpu_name

logger = logging.getLogger("benchmarks.extract")

CORPUS_TEST = Path(__file__).resolve().parents[1] / "corpus" / "mini" / "test"
RESNET34_ARGS = dict(feat_dim=80, embed_dim=256, pooling_func="TSTP", two_emb_layer=False)


def calibrate_batch_norm(model: torch.nn.Module, feats: List[torch.Tensor]) -> None:
    """Set every batch-norm layer's running statistics from one train-mode pass over ``feats``.

    Random weights with default statistics give activations far from a
    trained model's (deep residual nets grow them by orders of magnitude);
    cumulative statistics of real features put them back to unit scale.
    """
    from wespk.inference.runners import pad_features
    batch, lengths = pad_features(feats)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(batch), torch.from_numpy(lengths))
    model.eval()


def benchmark_audio(seconds: float, count: int) -> List[Tuple[str, np.ndarray, int]]:
    """``count`` real utterances of at least ``seconds``, cut to exactly ``seconds`` (one per speaker first)."""
    import soundfile
    from wespk.io.audio import load_audio
    by_speaker = [sorted(d.glob("*.flac")) for d in sorted(CORPUS_TEST.iterdir()) if d.is_dir()]
    chosen: List[Tuple[str, np.ndarray, int]] = []
    for round_index in range(max(len(files) for files in by_speaker)):
        for files in by_speaker:
            if round_index < len(files) and len(chosen) < count:
                path = str(files[round_index])
                info = soundfile.info(path)
                if info.frames / info.samplerate >= seconds:
                    samples, rate = load_audio(path)
                    chosen.append((path, samples[: int(round(seconds * rate))], rate))
    if len(chosen) < count:
        raise RuntimeError(f"only {len(chosen)} bundled test files are at least {seconds} s long")
    return chosen


def best_times(functions: Dict[str, Callable[[], object]], rounds: int, warmup: int = 2) -> Dict[str, float]:
    """Best wall time of each function over ``rounds`` interleaved rounds, after ``warmup`` calls each."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    best = {name: float("inf") for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def min_cosine(reference: np.ndarray, other: np.ndarray) -> float:
    reference = np.asarray(reference, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    dots = (reference * other).sum(axis=1)
    return float((dots / np.linalg.norm(reference, axis=1) / np.linalg.norm(other, axis=1)).min())


def make_resnet34_dir(root: Path, feats_audio: List[Tuple[str, np.ndarray, int]]) -> Path:
    import yaml
    from wespk.inference.frontend import FeatureFrontend
    from wespk.models import get_speaker_model
    model_dir = root / "resnet34"
    model_dir.mkdir(parents=True)
    config = {"model": "ResNet34", "model_args": dict(RESNET34_ARGS),
              "dataset_args": {"resample_rate": 16000, "cmn": True,
                               "fbank_args": {"num_mel_bins": 80, "frame_length": 25, "frame_shift": 10}}}
    torch.manual_seed(0)
    model = get_speaker_model("ResNet34")(**RESNET34_ARGS)
    frontend = FeatureFrontend(config)
    calibrate_batch_norm(model, [frontend(samples, rate) for _, samples, rate in feats_audio])
    torch.save(model.state_dict(), model_dir / "avg_model.pt")
    (model_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return model_dir


def make_ge2e_dir(root: Path) -> Optional[Path]:
    from wespk.pretrained.resemblyzer import ResemblyzerConversionError, convert_resemblyzer
    try:
        convert_resemblyzer(str(root / "ge2e"))
    except ResemblyzerConversionError as e:
        logger.warning("GE2E skipped: %s", e)
        return None
    return root / "ge2e"


def benchmark_encoder(name: str, model_dir: Path, audio: List[Tuple[str, np.ndarray, int]],
                      args: argparse.Namespace) -> Dict:
    """Encoder-only timings of every path on one utterance and on a batch."""
    from wespk.export.checked_export import load_eager_model
    from wespk.inference.frontend import FeatureFrontend
    from wespk.export.jit_export import export_model_dir_to_torchscript
    from wespk.export.onnx_export import export_model_dir_to_onnx
    from wespk.inference.runners import EagerRunner, OnnxRunner, TorchScriptRunner

    model, config = load_eager_model(str(model_dir))
    frontend = FeatureFrontend(config)
    seconds = len(audio[0][1]) / audio[0][2]
    frontend_time = best_times({"frontend": lambda: frontend(audio[0][1], audio[0][2])}, args.repeats)["frontend"]
    feats = [frontend(samples, rate) for _, samples, rate in audio]
    export_model_dir_to_onnx(str(model_dir), str(model_dir / "final.onnx"))
    export_model_dir_to_torchscript(str(model_dir), str(model_dir / "final.pt"))
    runners = {
        "eager fp32, model as loaded": EagerRunner(model, config, optimize=False),
        "eager fp32": EagerRunner(model, config),
        "eager bf16 autocast": EagerRunner(model, config, autocast_dtype=torch.bfloat16),
        "TorchScript": TorchScriptRunner(str(model_dir / "final.pt"), config),
        "ONNX Runtime": OnnxRunner(str(model_dir / "final.onnx"), config, num_threads=args.threads),
    }
    single, batch = [feats[0]], feats[: args.batch_size]
    logger.info("%s: timing one utterance", name)
    single_times = best_times({path: (lambda r=runner: r.embed_features(single)) for path, runner in runners.items()},
                              args.repeats)
    logger.info("%s: timing a batch of %d", name, len(batch))
    batch_times = best_times({path: (lambda r=runner: r.embed_features(batch)) for path, runner in runners.items()},
                             args.repeats, warmup=1)
    reference_single = runners["eager fp32, model as loaded"].embed_features(single)
    reference_batch = runners["eager fp32, model as loaded"].embed_features(batch)
    rows = []
    for path, runner in runners.items():
        cosine = min(min_cosine(reference_single, runner.embed_features(single)),
                     min_cosine(reference_batch, runner.embed_features(batch)))
        rows.append({"path": path, "single_s": single_times[path], "single_rtf": single_times[path] / seconds,
                     "batch_s": batch_times[path], "batch_rtf": batch_times[path] / (seconds * len(batch)),
                     "min_cosine": cosine})
    eager = rows[0]
    for row in rows:
        row["single_speedup"] = eager["single_s"] / row["single_s"]
        row["batch_speedup"] = eager["batch_s"] / row["batch_s"]
    return {"model": name, "utterance_seconds": seconds, "batch_size": len(batch),
            "frontend_rtf": frontend_time / seconds, "rows": rows}


def benchmark_end_to_end(name: str, model_dir: Path, args: argparse.Namespace, work: Path) -> Dict:
    """Audio files -> xvector.ark for eager (extract_embeddings), TorchScript and ONNX Runtime."""
    import soundfile
    import wespk
    from wespk.inference.frontend import FeatureFrontend
    from wespk.inference.extractor import extract_embeddings
    from wespk.inference.model_dir import load_model_config
    from wespk.io.embeddings import read_embeddings
    files = sorted(CORPUS_TEST.glob("*/*.flac"))[: args.e2e_utts]
    wav_scp = work / f"{name}_wav.scp"
    wav_scp.write_text("".join(f"{p.stem} {p}\n" for p in files))
    audio_seconds = sum(soundfile.info(str(p)).duration for p in files)
    fbank = FeatureFrontend(load_model_config(str(model_dir))).feature_type == "fbank"

    def eager(**options) -> Callable[[str], None]:
        def run(out: str) -> None:
            if fbank:
                extract_embeddings(str(wav_scp), str(model_dir), out, nj=1, batch_size=args.batch_size,
                                   checkpoint=str(model_dir / "avg_model.pt"), **options)
            else:  # extract_embeddings computes fbank only; the embedder selects the model's front end
                wespk.load_model(model_dir, backend="torch", batch_size=args.batch_size).extract_to_ark(
                    str(wav_scp), out)
        return run

    def exported(backend: str) -> Callable[[str], None]:
        return lambda out: wespk.load_model(model_dir, backend=backend, batch_size=args.batch_size,
                                            num_threads=args.threads).extract_to_ark(str(wav_scp), out)

    if fbank:
        paths = {"eager fp32, model as loaded, batches padded freely (baseline)":
                 eager(optimize=False, max_padding=float("inf")),
                 "eager fp32 (extract, defaults)": eager(),
                 "eager bf16 (extract --precision bf16)": eager(precision="bf16")}
    else:
        paths = {"eager fp32 (embedder)": eager()}
    paths.update({"TorchScript": exported("jit"), "ONNX Runtime": exported("onnx")})
    outputs = {path: str(work / f"{name}_e2e_{index}") for index, path in enumerate(paths)}
    logger.info("%s: end to end over %d files", name, len(files))
    best = best_times({path: (lambda run=run, out=outputs[path]: run(out)) for path, run in paths.items()},
                      rounds=2, warmup=1)
    rows, reference = [], None
    for path in paths:
        keys, vectors = read_embeddings(os.path.join(outputs[path], "xvector.scp"))
        if reference is None:
            reference = (keys, vectors)
        if keys != reference[0]:
            raise RuntimeError(f"{path}: extracted keys differ from eager's")
        rows.append({"path": path, "seconds": best[path], "rtf": best[path] / audio_seconds,
                     "min_cosine": min_cosine(reference[1], vectors)})
    for row in rows:
        row["speedup"] = rows[0]["seconds"] / row["seconds"]
    return {"model": name, "files": len(files), "audio_seconds": audio_seconds, "rows": rows}


def format_report(encoder: List[Dict], end_to_end: List[Dict], args: argparse.Namespace) -> str:
    cpu = cpu_name()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import onnxruntime
    lines = [f"CPU: {cpu}; {args.threads} thread(s); torch {torch.__version__}, "
             f"onnxruntime {onnxruntime.__version__}; load average (1 min) {args.load_before:.1f} before the run, "
             f"{os.getloadavg()[0]:.1f} after; best of {args.repeats} interleaved rounds (end to end: 2)", ""]
    for result in encoder:
        lines += [f"### {result['model']}: encoder only (features of real speech, "
                  f"{result['utterance_seconds']:g} s utterances; front end RTF {result['frontend_rtf']:.4f})", "",
                  f"| path | 1 x {result['utterance_seconds']:g} s: ms | RTF | x first row | "
                  f"{result['batch_size']} x {result['utterance_seconds']:g} s: ms | RTF | x first row | "
                  "min cosine vs first row |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for row in result["rows"]:
            lines.append(f"| {row['path']} | {1000 * row['single_s']:.1f} | {row['single_rtf']:.4f} | "
                         f"{row['single_speedup']:.2f} | {1000 * row['batch_s']:.0f} | {row['batch_rtf']:.4f} | "
                         f"{row['batch_speedup']:.2f} | {row['min_cosine']:.6f} |")
        lines.append("")
    for result in end_to_end:
        lines += [f"### {result['model']}: end to end, {result['files']} files "
                  f"({result['audio_seconds']:.0f} s of audio) to xvector.ark, batch {args.batch_size}", "",
                  "| path | seconds | RTF | x first row | min cosine vs first row |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for row in result["rows"]:
            lines.append(f"| {row['path']} | {row['seconds']:.2f} | {row['rtf']:.4f} | {row['speedup']:.2f} | "
                         f"{row['min_cosine']:.6f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["ResNet34", "GE2E"], choices=["ResNet34", "GE2E"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="CPU threads for PyTorch and ONNX Runtime (default: torch's default)")
    parser.add_argument("--seconds", type=float, default=4.0, help="utterance length (default 4 s)")
    parser.add_argument("--batch_size", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="interleaved timing rounds; the best time of each path is reported (default 5)")
    parser.add_argument("--e2e_utts", type=int, default=32, help="files in the end-to-end run (default 32)")
    parser.add_argument("--min_cosine", type=float, default=0.999, help="required cosine with eager fp32")
    parser.add_argument("--json", default=None, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    args.load_before = os.getloadavg()[0]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    logger.setLevel(logging.INFO)
    torch.set_num_threads(args.threads)
    from wespk.utils.malloc import keep_large_allocations_in_heap
    keep_large_allocations_in_heap()  # as python -m wespk.bin.extract does; applies to every path alike
    audio = benchmark_audio(args.seconds, args.batch_size)
    encoder_results, e2e_results = [], []
    with tempfile.TemporaryDirectory(prefix="wespk_benchmark_") as tmp:
        work = Path(tmp)
        for name in args.models:
            model_dir = make_resnet34_dir(work, audio) if name == "ResNet34" else make_ge2e_dir(work)
            if model_dir is None:
                continue
            encoder_results.append(benchmark_encoder(name, model_dir, audio, args))
            e2e_results.append(benchmark_end_to_end(name, model_dir, args, work))
    report = format_report(encoder_results, e2e_results, args)
    print(report)
    if args.json:
        from wespk.io.files import atomic_output
        with atomic_output(args.json) as f:
            json.dump({"encoder": encoder_results, "end_to_end": e2e_results, "threads": args.threads}, f, indent=1)
    failed = [(r["model"], row["path"], row["min_cosine"]) for r in encoder_results + e2e_results
              for row in r["rows"] if row["min_cosine"] < args.min_cosine]
    if failed:
        for model, path, cosine in failed:
            print(f"benchmark_extract: {model} {path}: cosine {cosine:.6f} with eager fp32 is below "
                  f"{args.min_cosine}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
