"""Verification EER of a converted resemblyzer model dir, with wespk's front end
and (optionally) with resemblyzer's own preprocessing and embeddings.

Usage::

    python -m wespk.pretrained.compare_resemblyzer --model MODEL_DIR \\
        --audio-dir CORPUS_DIR --trials TRIALS [--resemblyzer] [--scores-dir DIR] [--threads 1]

``CORPUS_DIR`` holds ``<speaker>/<utt_id>.{wav,flac}`` (the layout of the
bundled corpora); every utterance named in ``TRIALS`` must be there.
Systems scored (cosine scoring, no normalisation):

* ``wespk``: wespk's own front end (:func:`frontend_features`) + the model;
* ``wespk+resemblyzer_preprocess`` (with ``--resemblyzer``): resemblyzer's
  ``preprocess_wav`` (volume + webrtcvad trimming), then wespk's mel and model;
* ``resemblyzer`` (with ``--resemblyzer``): resemblyzer's
  ``VoiceEncoder.embed_utterance(preprocess_wav(wav))``.

The ``--resemblyzer`` systems need the resemblyzer package (dev
environment); the ``wespk`` system does not.
"""

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from wespk.io.audio import AudioError, load_audio
from wespk.io.files import DataFileError, atomic_output
from wespk.io.trials import read_trials

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac")


def find_audio(audio_dir: str, utt_ids: List[str]) -> Dict[str, Path]:
    """``utt_id -> path`` for ``<audio_dir>/*/<utt_id>.{wav,flac}``; every id must be found."""
    found = {p.stem: p for p in Path(audio_dir).glob("*/*") if p.suffix in AUDIO_EXTENSIONS}
    missing = [u for u in utt_ids if u not in found]
    if missing:
        raise DataFileError(audio_dir, None, f"no audio for {len(missing)} trial utterance(s), e.g. {missing[0]}")
    return {u: found[u] for u in utt_ids}


def build_systems(model_dir: str, with_resemblyzer: bool) -> Dict[str, Callable[[np.ndarray, int], np.ndarray]]:
    """Name -> function(samples, sample_rate) returning a unit-length embedding."""
    import yaml

    from wespk.features.resemblyzer_mel import TRAILING_FRAMES, frontend_features, resemblyzer_mel
    from wespk.models.ge2e_lstm import GE2E_LSTM
    from wespk.io.checkpoint import load_model_weights

    with open(Path(model_dir) / "config.yaml", encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if config.get("model") != "GE2E_LSTM":
        raise ValueError(f"{model_dir}/config.yaml: model is {config.get('model')!r}, expected GE2E_LSTM")
    model = GE2E_LSTM(**config["model_args"])
    load_model_weights(model, str(Path(model_dir) / "avg_model.pt"))
    model.eval()
    dataset_args = config.get("dataset_args", {})

    def run_model(feats: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return model(feats[None])[0].numpy()

    systems = {"wespk": lambda samples, rate: run_model(frontend_features(samples, rate, dataset_args))}
    if with_resemblyzer:
        import resemblyzer

        encoder = resemblyzer.VoiceEncoder("cpu", verbose=False)

        def resemblyzer_input(samples: np.ndarray, rate: int) -> np.ndarray:
            return resemblyzer.preprocess_wav(samples, source_sr=None if rate == 16000 else rate)

        systems["wespk+resemblyzer_preprocess"] = lambda samples, rate: run_model(torch.from_numpy(
            resemblyzer_mel(resemblyzer_input(samples, rate), trailing_frames=TRAILING_FRAMES)))
        systems["resemblyzer"] = lambda samples, rate: encoder.embed_utterance(resemblyzer_input(samples, rate))
    return systems


def compare(model_dir: str, audio_dir: str, trials_path: str, with_resemblyzer: bool,
            scores_dir: Optional[str] = None) -> Dict[str, Dict[str, float]]:
    """Embed every trial utterance with every system; return per-system metrics.

    With ``scores_dir``, each system's scores are also written there as
    ``<system>.score`` (``enroll test score label`` lines, trial order).
    """
    from wespk.scoring.metrics import eer_min_dcf

    trials = read_trials(trials_path)
    if any(label is None for _, _, label in trials):
        raise DataFileError(trials_path, None, "trials need target/nontarget labels")
    utts = sorted({u for a, b, _ in trials for u in (a, b)})
    paths = find_audio(audio_dir, utts)
    systems = build_systems(model_dir, with_resemblyzer)
    embeddings: Dict[str, Dict[str, np.ndarray]] = {name: {} for name in systems}
    seconds = {name: 0.0 for name in systems}
    audio_seconds = 0.0
    for index, utt in enumerate(utts, 1):
        samples, rate = load_audio(str(paths[utt]))
        audio_seconds += len(samples) / rate
        for name, embed in systems.items():
            start = time.perf_counter()
            embeddings[name][utt] = embed(samples, rate)
            seconds[name] += time.perf_counter() - start
        if index % 100 == 0:
            logger.info("embedded %d/%d utterances", index, len(utts))
    is_target = np.array([label == "target" for _, _, label in trials])
    results = {}
    for name in systems:
        table = embeddings[name]
        scores = np.array([float(table[a] @ table[b]) for a, b, _ in trials])
        if scores_dir:
            with atomic_output(Path(scores_dir) / f"{name}.score") as f:
                f.writelines(f"{a} {b} {score:.6f} {label}\n" for (a, b, label), score in zip(trials, scores))
        metrics = eer_min_dcf(scores, is_target, p_targets=(0.01,))
        results[name] = {"eer_percent": 100 * metrics.eer, "min_dcf_0.01": metrics.min_dcf[0.01],
                         "real_time_factor": seconds[name] / audio_seconds}
        if name != "resemblyzer" and "resemblyzer" in embeddings:
            cos = np.array([float(table[u] @ embeddings["resemblyzer"][u]) for u in utts])
            results[name].update(cos_min=float(cos.min()), cos_median=float(np.median(cos)),
                                 cos_p5=float(np.percentile(cos, 5)))
    results["_info"] = {"utterances": len(utts), "trials": len(trials), "targets": int(is_target.sum()),
                        "audio_hours": audio_seconds / 3600}
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model dir from checkpoint_tool convert-resemblyzer")
    parser.add_argument("--audio-dir", required=True, help="<speaker>/<utt_id>.{wav,flac} tree")
    parser.add_argument("--trials", required=True, help="enroll test target|nontarget")
    parser.add_argument("--resemblyzer", action="store_true",
                        help="also score resemblyzer's preprocessing and embeddings (needs the package)")
    parser.add_argument("--scores-dir", default=None, help="also write <system>.score files here")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    from wespk.utils.logs import setup_logging
    setup_logging()
    torch.set_num_threads(args.threads)
    try:
        results = compare(args.model, args.audio_dir, args.trials, args.resemblyzer, args.scores_dir)
    except (DataFileError, AudioError, ValueError, OSError, ImportError) as e:
        print(f"compare_resemblyzer: error: {e}", file=sys.stderr)
        return 1
    info = results.pop("_info")
    print(f"{args.trials}: {info['trials']} trials ({info['targets']} target), "
          f"{info['utterances']} utterances, {info['audio_hours'] * 60:.1f} min of audio")
    print(f"{'system':32s} {'EER %':>7s} {'minDCF0.01':>10s} {'RTF':>7s}  cosine to resemblyzer (min/p5/median)")
    for name, r in results.items():
        cos = (f"{r['cos_min']:.4f}/{r['cos_p5']:.4f}/{r['cos_median']:.4f}" if "cos_min" in r else "-")
        print(f"{name:32s} {r['eer_percent']:7.2f} {r['min_dcf_0.01']:10.4f} {r['real_time_factor']:7.4f}  {cos}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
