"""Audio to embeddings, one utterance or a whole list in batches.

Evaluation has no randomness by construction: no dither, no random crop,
no augmentation. Batches are padded and the model is given the true lengths,
so pooling ignores the padding. The batch plan (which utterances share a
batch) depends only on the list and the batch size, never on the number of
jobs, so ``--nj 1`` and ``--nj 3`` give the same vectors.
"""

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from wespk.data.data_dir import read_utterances
from wespk.data.records import Utterance
from wespk.io.audio import AudioError, audio_duration, load_audio
from wespk.io.embeddings import read_embeddings, write_embeddings
from wespk.io.files import DataFileError, atomic_output, read_kaldi_map
from wespk.inference.frontend import FeatureFrontend

logger = logging.getLogger(__name__)

#: ``--precision`` choices and the autocast dtype of each (None: plain float32).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: /proc/cpuinfo flags of native bf16 arithmetic; without them oneDNN converts to fp32 and back, and
#: bf16 autocast on the CPU is slower than fp32 (ResNet34 end to end: 2.8x slower on an AVX-512 Xeon
#: without them, 1.8x faster on an AMD EPYC with AVX512-BF16).
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo: Optional[str] = None) -> Optional[bool]:
    """Whether the CPU has bf16 instructions, from ``/proc/cpuinfo`` (or the given text of it);
    None where that cannot be told (no such file)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return None
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    if not flags:
        return None
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


class EmbeddingExtractor:
    """A model dir's front end (:class:`~wespk.inference.frontend.FeatureFrontend`)
    plus its encoder in eval mode."""

    def __init__(self, model: torch.nn.Module, config: Dict, device: str = "cpu", optimize: bool = True,
                 precision: str = "fp32"):
        """``optimize``: run an inference copy of ``model`` with batch norm folded (and channels-last
        on the CPU, see :mod:`wespk.inference.optimize`); ``model`` itself is never modified.
        ``precision``: ``fp32``, or ``bf16`` / ``fp16`` to run the forward under autocast
        (embeddings are returned in float32 either way)."""
        from wespk.inference.optimize import optimize_for_inference
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        self.device = torch.device(device)
        self.model = optimize_for_inference(model, self.device) if optimize else model.eval()
        self.autocast_dtype = PRECISIONS[precision]
        if precision == "bf16" and self.device.type == "cpu" and cpu_has_native_bf16() is False:
            logger.warning("this CPU has no bf16 instructions (%s): bf16 autocast is emulated and slower "
                           "than fp32 here; the ONNX export is the faster exact path",
                           " or ".join(NATIVE_BF16_FLAGS))
        self.frontend = FeatureFrontend(config)
        self.sample_rate = self.frontend.sample_rate

    def features(self, samples: np.ndarray, sample_rate: int, source: str = "audio") -> torch.Tensor:
        """Features [T, F] of a mono float waveform at any rate (too short: AudioError)."""
        return self.frontend(samples, sample_rate, source)

    @torch.inference_mode()
    def embed_features(self, feats: Sequence[torch.Tensor]) -> np.ndarray:
        """Embeddings [B, D] for a list of [T_i, F] feature matrices (padded batch, lengths passed)."""
        from wespk.models import embedding_from_output
        lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        batch = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1])
        for i, f in enumerate(feats):
            batch[i, : f.shape[0]] = f
        batch, lengths = batch.to(self.device), lengths.to(self.device)
        autocast = (torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)
                    if self.autocast_dtype is not None else contextlib.nullcontext())
        with autocast:
            if len(feats) == 1 or bool((lengths == lengths[0]).all()):
                out = self.model(batch)  # nothing is padded: no masks needed
            else:
                out = self.model(batch, lengths)
        return embedding_from_output(out).float().cpu().numpy()


#: Default bound on padding: a batch's padded length x size may exceed its true total by at most 10%.
DEFAULT_MAX_PADDING = 0.1


def plan_batches(utts: List[Utterance], batch_size: int,
                 max_padding: float = DEFAULT_MAX_PADDING) -> List[List[Utterance]]:
    """Sort by duration (then key) and cut into batches; independent of the job count.

    A batch holds up to ``batch_size`` utterances of similar length: a new
    one starts early when padding every member to the longest would add more
    than ``max_padding`` (a fraction of the batch's true duration) of frames
    that are computed and thrown away. On a large list neighbours in length
    order differ little and batches are full; on a small or very uneven list
    batches get smaller rather than wasteful.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_padding < 0:
        raise ValueError(f"max_padding must be >= 0, got {max_padding}")
    missing = [u for u in utts if u.duration is None]
    if missing:
        logger.info("reading durations of %d utterances from audio headers", len(missing))
    with_dur = []
    for u in utts:
        if u.duration is None:
            try:
                u = dataclasses.replace(u, duration=audio_duration(u.audio))
            except AudioError:
                u = dataclasses.replace(u, duration=0.0)  # reported when it is decoded
        with_dur.append(u)
    with_dur.sort(key=lambda u: (u.duration, u.key))
    batches: List[List[Utterance]] = []
    current: List[Utterance] = []
    total = 0.0
    for u in with_dur:
        # sorted ascending: u would be the batch's longest member
        padded = u.duration * (len(current) + 1)
        if current and (len(current) >= batch_size or padded > (1 + max_padding) * (total + u.duration)):
            batches.append(current)
            current, total = [], 0.0
        current.append(u)
        total += u.duration
    if current:
        batches.append(current)
    return batches


def _run_batches(extractor: EmbeddingExtractor, batches: List[List[Utterance]], strict: bool,
                 progress_every: float = 10.0) -> Tuple[List[Tuple[str, np.ndarray]], Dict[str, float], List[str]]:
    results, durations, skipped = [], {}, []
    total = sum(len(b) for b in batches)
    done, t0, t_last = 0, time.time(), time.time()
    audio_seconds = 0.0
    for batch in batches:
        feats, keys = [], []
        for u in batch:
            try:
                samples, sr = load_audio(u.audio)
                f = extractor.features(samples, sr, u.source())
            except AudioError as e:
                if strict:
                    raise AudioError(f"utterance {u.key}: {e}") from None
                logger.warning("skipping utterance %s: %s", u.key, e)
                skipped.append(u.key)
                continue
            feats.append(f)
            keys.append(u.key)
            durations[u.key] = len(samples) / sr
            audio_seconds += len(samples) / sr
        if feats:
            for key, vec in zip(keys, extractor.embed_features(feats)):
                results.append((key, vec))
        done += len(batch)
        now = time.time()
        if now - t_last >= progress_every or done == total:
            rate = done / max(now - t0, 1e-9)
            logger.info("extracted %d/%d utterances, %.1f utt/s, real-time factor %.4f, ETA %.0f s",
                        done, total, rate, (now - t0) / max(audio_seconds, 1e-9), (total - done) / max(rate, 1e-9))
            t_last = now
    return results, durations, skipped


def _job_main(job: int, model_dir: str, checkpoint: Optional[str], device: str,
              batches: List[List[Utterance]], out_prefix: str, strict: bool, threads: int,
              precision: str = "fp32", optimize: bool = True, trust_checkpoint: bool = False) -> None:
    from wespk.inference.model_dir import load_speaker_model
    from wespk.utils.logs import setup_logging
    setup_logging(0)
    torch.set_num_threads(threads)
    if device.startswith("cuda") and torch.cuda.device_count() > 1:
        device = f"cuda:{job % torch.cuda.device_count()}"
    model, config = load_speaker_model(model_dir, checkpoint, device, trust_checkpoint)
    extractor = EmbeddingExtractor(model, config, device, optimize=optimize, precision=precision)
    results, durations, skipped = _run_batches(extractor, batches, strict)
    write_embeddings(f"{out_prefix}.ark", f"{out_prefix}.scp", results)
    with atomic_output(f"{out_prefix}.utt2dur") as f:
        f.writelines(f"{k} {d:.4f}\n" for k, d in durations.items())
    with atomic_output(f"{out_prefix}.skipped") as f:
        f.writelines(f"{k}\n" for k in skipped)


def _spawned_job_main(*args) -> None:
    """A job in its own process: wespk owns the process, so its allocator may be tuned."""
    from wespk.utils.malloc import keep_large_allocations_in_heap
    keep_large_allocations_in_heap()
    _job_main(*args)


def extract_embeddings(data: str, model_dir: str, out_dir: str, nj: int = 1, batch_size: int = 16,
                       device: str = "cpu", checkpoint: Optional[str] = None, strict: bool = False,
                       precision: str = "fp32", max_padding: float = DEFAULT_MAX_PADDING,
                       optimize: bool = True, trust_checkpoint: bool = False) -> int:
    """Extract every utterance of ``data`` into ``out_dir/xvector.{ark,scp}``.

    The list is cut into length-sorted batches (see :func:`plan_batches` for
    ``batch_size`` and ``max_padding``; ``precision`` and ``optimize`` as in
    :class:`EmbeddingExtractor`), the batches are dealt to
    ``nj`` jobs (processes), and their outputs are merged in list order into
    one ark/scp. Also writes ``utt2dur`` (seconds) and, when utterances had
    to be skipped (unreadable, too short), ``skipped`` listing them. Returns
    the number of embeddings written.
    """
    utts = read_utterances(data)
    if not utts:
        raise DataFileError(data, None, "no utterances")
    order = {u.key: i for i, u in enumerate(utts)}
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    batches = plan_batches(utts, batch_size, max_padding)
    nj = max(1, min(nj, len(batches)))
    os.makedirs(out_dir, exist_ok=True)
    tmp_dir = os.path.join(out_dir, ".jobs")
    os.makedirs(tmp_dir, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // nj) if device == "cpu" else 1
    prefixes = [os.path.join(tmp_dir, f"xvector.{j + 1}") for j in range(nj)]
    logger.info("extracting %d utterances in %d batches with %d job(s) on %s", len(utts), len(batches), nj, device)
    if nj == 1:
        _job_main(0, model_dir, checkpoint, device, batches, prefixes[0], strict, torch.get_num_threads(), precision,
                  optimize, trust_checkpoint)
    else:
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_spawned_job_main,
                             args=(j, model_dir, checkpoint, device, batches[j::nj], prefixes[j], strict, threads,
                                   precision, optimize, trust_checkpoint))
                 for j in range(nj)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        failed = [j + 1 for j, p in enumerate(procs) if p.exitcode != 0]
        if failed:
            raise RuntimeError(f"extraction job(s) {failed} failed; see the messages above")

    merged: List[Tuple[str, np.ndarray]] = []
    durations, skipped = {}, []
    for prefix in prefixes:
        keys, vectors = read_embeddings(f"{prefix}.scp") if os.path.getsize(f"{prefix}.scp") else ([], [])
        merged.extend(zip(keys, vectors))
        durations.update(read_kaldi_map(f"{prefix}.utt2dur"))
        with open(f"{prefix}.skipped", encoding="utf-8") as f:
            skipped.extend(line.strip() for line in f if line.strip())
    merged.sort(key=lambda kv: order[kv[0]])
    count = write_embeddings(os.path.join(out_dir, "xvector.ark"), os.path.join(out_dir, "xvector.scp"), merged)
    with atomic_output(os.path.join(out_dir, "utt2dur")) as f:
        f.writelines(f"{k} {durations[k]}\n" for k, _ in merged)
    skipped_path = os.path.join(out_dir, "skipped")
    if skipped:
        with atomic_output(skipped_path) as f:
            f.writelines(f"{k}\n" for k in sorted(skipped, key=lambda k: order[k]))
        logger.warning("%d utterance(s) skipped, listed in %s", len(skipped), skipped_path)
    elif os.path.exists(skipped_path):
        os.unlink(skipped_path)
    for prefix in prefixes:
        for ext in (".ark", ".scp", ".utt2dur", ".skipped"):
            if os.path.exists(prefix + ext):
                os.unlink(prefix + ext)
    os.rmdir(tmp_dir)
    return count
