"""Compute fbank features of a data dir into Kaldi ark/scp files.

Usage:
  python -m wespk.bin.compute_fbank [--nj N] [--config CONF.yaml] DATA_DIR OUT_DIR

Writes OUT_DIR/feats.<job>.ark, OUT_DIR/feats.scp (sorted) and
OUT_DIR/utt2num_frames, and copies utt2spk/spk2utt so that OUT_DIR is a
feature data dir: train with ``data_type: feat`` and ``train_data:
OUT_DIR/feats.scp``. Features are the pipeline's (kaldifeat, WeSpeaker's
options, no dither) without mean normalisation, which training applies
online. Options come from the ``dataset_args`` of --config (resample_rate,
fbank_args, vad) and can be overridden below. feats.scp appears only when
every job has finished.
"""

import argparse
import logging
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Dict, Tuple

from wespk.io.files import atomic_output, read_kaldi_map, write_kaldi_map

logger = logging.getLogger("wespk.bin.compute_fbank")


def feature_args(config_path: str, overrides: argparse.Namespace) -> Dict[str, Any]:
    """``dataset_args`` for extraction: from the config, with CLI overrides, CMN off."""
    args: Dict[str, Any] = {}
    if config_path:
        from wespk.io.config import load_yaml
        section = load_yaml(config_path).get("dataset_args") or {}
        for key in ("resample_rate", "resample", "fbank_args", "vad", "vad_args", "strict"):
            if key in section:
                args[key] = section[key]
    fbank = dict(args.get("fbank_args") or {})
    for name in ("num_mel_bins", "frame_length", "frame_shift", "backend"):
        value = getattr(overrides, name)
        if value is not None:
            fbank[name] = value
    args["fbank_args"] = fbank
    if overrides.resample_rate is not None:
        args["resample_rate"] = overrides.resample_rate
    if overrides.strict:
        args["strict"] = True
    args["cmn"] = False
    return args


def run_job(data_dir: str, out_dir: str, job: int, num_jobs: int,
            dataset_args: Dict[str, Any]) -> Tuple[int, Dict[str, int], int]:
    """Write feats.<job>.ark/scp for part ``job`` of ``num_jobs``; returns
    ``(job, frames per utterance written, utterances skipped)``."""
    import kaldiio
    import torch
    from wespk.data.dataset import EvalDataset
    torch.set_num_threads(1)
    dataset = EvalDataset(data_dir, "raw", dataset_args, part=(job, num_jobs))
    ark = os.path.abspath(os.path.join(out_dir, f"feats.{job + 1}.ark"))
    scp = os.path.join(out_dir, f".feats.{job + 1}.scp")
    frames: Dict[str, int] = {}
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for key, feats in dataset:
            writer(key, feats.numpy())
            frames[key] = int(feats.shape[0])
    return job, frames, dataset.stats["skipped"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--nj", type=int, default=1, help="parallel jobs (default: %(default)s)")
    parser.add_argument("--config", default="", help="training YAML whose dataset_args to use")
    parser.add_argument("--num-mel-bins", "--num_mel_bins", type=int, default=None)
    parser.add_argument("--frame-length", "--frame_length", type=float, default=None, help="ms")
    parser.add_argument("--frame-shift", "--frame_shift", type=float, default=None, help="ms")
    parser.add_argument("--resample-rate", "--resample_rate", type=int, default=None)
    parser.add_argument("--backend", default=None, choices=("auto", "kaldifeat", "knf"))
    parser.add_argument("--strict", action="store_true", help="fail on bad audio instead of skipping it")
    parser.add_argument("data_dir")
    parser.add_argument("out_dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.nj < 1:
        parser.error("--nj must be >= 1")

    dataset_args = feature_args(args.config, args)
    from wespk.data.dataset_args import resolve_dataset_args
    try:
        resolve_dataset_args(dataset_args)
    except ValueError as e:
        logger.error("%s", e)
        return 1
    os.makedirs(args.out_dir, exist_ok=True)
    num_utts = len(read_kaldi_map(os.path.join(args.data_dir, "utt2spk")))
    num_jobs = max(1, min(args.nj, num_utts))
    logger.info("computing fbank for %d utterances of %s in %d job(s)", num_utts, args.data_dir, num_jobs)
    if num_jobs == 1:
        results = [run_job(args.data_dir, args.out_dir, 0, 1, dataset_args)]
    else:
        with ProcessPoolExecutor(max_workers=num_jobs, mp_context=get_context("fork")) as pool:
            futures = [pool.submit(run_job, args.data_dir, args.out_dir, j, num_jobs, dataset_args)
                       for j in range(num_jobs)]
            results = [f.result() for f in futures]
    feats: Dict[str, str] = {}
    frames: Dict[str, int] = {}
    for job, job_frames, _ in sorted(results, key=lambda r: r[0]):
        frames.update(job_frames)
        part = os.path.join(args.out_dir, f".feats.{job + 1}.scp")
        if os.path.getsize(part) > 0:
            feats.update(read_kaldi_map(part))
        os.unlink(part)
    write_kaldi_map(os.path.join(args.out_dir, "utt2num_frames"), frames)
    write_kaldi_map(os.path.join(args.out_dir, "feats.scp"), feats)
    if os.path.abspath(args.out_dir) != os.path.abspath(args.data_dir):
        for name in ("utt2spk", "spk2utt"):
            source = os.path.join(args.data_dir, name)
            if os.path.isfile(source):
                with open(source, "rb") as src, atomic_output(os.path.join(args.out_dir, name), "wb") as dst:
                    shutil.copyfileobj(src, dst)
    skipped = sum(r[2] for r in results)
    logger.info("wrote %d feature matrices to %s/feats.scp%s", len(feats), args.out_dir,
                f" ({skipped} utterances skipped, see warnings)" if skipped else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
