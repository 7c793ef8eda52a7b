"""The one extraction engine: audio to embeddings, for every backend and every caller.

Evaluation has no randomness by construction: no dither, no random crop,
no augmentation. Batches are padded and the model is given the true lengths,
so pooling ignores the padding. The batch plan (which utterances share a
batch) depends only on the list and the batch size, never on the number of
jobs, so ``--nj 1`` and ``--nj 3`` give the same vectors.

The steps, each one replaceable:

1. **Model dir** -> :class:`~wespk.inference.model_dir.ResolvedModel`
   (:func:`~wespk.inference.model_dir.resolve_model_dir`): config, backend and
   model file.
2. **Front end** -> the model's input, chosen by
   :func:`~wespk.inference.frontend.input_kind` (the one place that decides):
   fbank matrices ``[T, F]``, or the resampled waveform ``[S]`` for models with
   their own (SSL) frontend. A new input kind is a new front end class
   returned by :func:`~wespk.inference.frontend.build_frontend`.
3. **Runner** -> embeddings ``[B, D]`` of a padded batch
   (:func:`~wespk.inference.runners.make_runner`: eager PyTorch with the
   inference copy (batch norm folded, channels-last) and ``precision``,
   TorchScript, or ONNX Runtime). Runners pad along the first axis, so they
   take feature matrices and waveforms alike.
4. **Post-processing** (optional) -> ``postprocess(keys, embeddings) ->
   embeddings`` on every batch, e.g. an embedding enhancer. With ``nj > 1``
   it is sent to the job processes, so it must be picklable (a module-level
   function or an instance of a module-level class).

Callers:

* :func:`extract_embeddings` - a list (data dir, ``wav.scp``, raw list) ->
  ``xvector.{ark,scp}`` or one ``.npy`` per utterance, ``utt2dur`` and
  ``skipped``, in ``nj`` processes; used by ``python -m wespk.bin.extract``,
  ``wespk extract`` and :meth:`wespk.api.SpeakerEmbedder.extract_to_ark`.
* :class:`EmbeddingExtractor` - in memory: :meth:`~EmbeddingExtractor.features`
  and :meth:`~EmbeddingExtractor.embed_features` for ready inputs,
  :meth:`~EmbeddingExtractor.embed_segments` for a list of ``(start, end)``
  pieces of one recording (diarization's sub-segments), in padded batches.
"""

import dataclasses
import logging
import multiprocessing
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from wespk.data.data_dir import read_utterances
from wespk.data.records import Utterance
from wespk.inference.frontend import build_frontend, input_kind
from wespk.inference.runners import PRECISIONS, EagerRunner, make_runner
from wespk.io.audio import AudioError, audio_duration, load_audio
from wespk.io.embeddings import read_embeddings, write_embeddings
from wespk.io.files import DataFileError, atomic_output, read_kaldi_map

logger = logging.getLogger(__name__)

#: A post-processing step on a batch of embeddings: ``(keys, embeddings [B, D]) -> embeddings [B, D']``.
PostProcess = Callable[[Sequence[str], np.ndarray], np.ndarray]
#: Output formats of :func:`extract_embeddings`.
OUTPUT_FORMATS = ("ark", "npy")
#: Default bound on padding: a batch's padded length x size may exceed its true total by at most 10%.
DEFAULT_MAX_PADDING = 0.1


class EmbeddingExtractor:
    """A model dir's front end plus a runner (eager PyTorch, TorchScript or ONNX Runtime).

    ``EmbeddingExtractor(model, config)`` wraps an eager PyTorch model
    (``optimize`` and ``precision`` as in
    :class:`~wespk.inference.runners.EagerRunner`; ``model`` itself is never
    modified); ``model`` may also be a ready runner (anything with
    ``embed_inputs``). :meth:`from_model_dir` resolves a model dir for any backend.
    """

    def __init__(self, model, config: Dict, device: str = "cpu", optimize: bool = True,
                 precision: str = "fp32", postprocess: Optional[PostProcess] = None):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        if isinstance(model, torch.nn.Module):
            self.runner = EagerRunner(model, config, device, optimize=optimize, precision=precision)
        else:
            self.runner = model
        self.config = config
        self.device = torch.device(device)
        self.model = getattr(self.runner, "model", None)
        self.backend = self.runner.backend
        self.input_kind = input_kind(config)
        self.frontend = build_frontend(config)
        self.sample_rate = self.frontend.sample_rate
        self.postprocess = postprocess
        #: the :class:`~wespk.inference.model_dir.ResolvedModel` when made by :meth:`from_model_dir`
        self.resolved = None

    @classmethod
    def from_model_dir(cls, path: str, backend: str = "auto", device: str = "cpu",
                       checkpoint: Optional[str] = None, precision: str = "fp32", optimize: bool = True,
                       num_threads: Optional[int] = None, trust_checkpoint: bool = False,
                       postprocess: Optional[PostProcess] = None) -> "EmbeddingExtractor":
        """The extractor of a model dir (or model file) for ``backend`` (see
        :func:`~wespk.inference.model_dir.resolve_model_dir`); ``checkpoint`` names the model file."""
        from wespk.inference.model_dir import resolve_model_dir
        resolved = resolve_model_dir(path, backend, model_file=checkpoint)
        runner = make_runner(resolved, device, precision, optimize, num_threads, trust_checkpoint)
        extractor = cls(runner, resolved.config, device, postprocess=postprocess)
        extractor.resolved = resolved
        return extractor

    def features(self, samples: np.ndarray, sample_rate: int, source: str = "audio") -> torch.Tensor:
        """The model input (``[T, F]`` features or ``[S]`` samples) of a mono float waveform at any rate
        (too short: AudioError)."""
        return self.frontend(samples, sample_rate, source)

    def embed_features(self, inputs: Sequence[torch.Tensor]) -> np.ndarray:
        """Raw embeddings ``[B, D]`` of model inputs in one padded batch (no post-processing)."""
        return np.asarray(self.runner.embed_inputs(list(inputs)), dtype=np.float32)

    def embed_keyed(self, keys: Sequence[str], inputs: Sequence[torch.Tensor]) -> np.ndarray:
        """Embeddings of one batch with the post-processing step applied (when there is one)."""
        vectors = self.embed_features(inputs)
        if self.postprocess is not None:
            vectors = np.asarray(self.postprocess(list(keys), vectors), dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[0] != len(keys):
                raise ValueError(f"postprocess returned shape {vectors.shape} for a batch of {len(keys)}")
        return vectors

    def embed_segments(self, samples: np.ndarray, sample_rate: int, segments: Sequence[Tuple[float, float]],
                       batch_size: int = 16, keys: Optional[Sequence[str]] = None) -> Tuple[np.ndarray, List[int]]:
        """Embeddings of ``(start, end)`` pieces (seconds) of one recording, in padded batches.

        Returns ``(embeddings [M, D], kept)``: ``kept`` are the indices of the
        segments that could be embedded (in input order); a piece too short for
        the front end is left out. Pieces of similar length share a batch; the
        values do not depend on ``batch_size`` beyond float rounding.
        ``keys`` (default the indices as strings) are what post-processing sees.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        samples = np.asarray(samples, dtype=np.float32)
        keys = [str(i) for i in range(len(segments))] if keys is None else list(keys)
        inputs: Dict[int, torch.Tensor] = {}
        for i, (start, end) in enumerate(segments):
            if not 0 <= start < end:
                raise ValueError(f"segment {i}: need 0 <= start < end, got ({start}, {end})")
            piece = samples[int(round(start * sample_rate)): int(round(end * sample_rate))]
            try:
                inputs[i] = self.features(piece, sample_rate, f"segment {start:.2f}-{end:.2f} s")
            except AudioError as e:
                logger.debug("%s", e)
        kept = sorted(inputs)
        if not kept:
            return np.zeros((0, 0), dtype=np.float32), []
        order = sorted(kept, key=lambda i: (inputs[i].shape[0], i))
        rows: Dict[int, np.ndarray] = {}
        for begin in range(0, len(order), batch_size):
            chunk = order[begin:begin + batch_size]
            for i, vector in zip(chunk, self.embed_keyed([keys[i] for i in chunk], [inputs[i] for i in chunk])):
                rows[i] = vector
        return np.stack([rows[i] for i in kept]), kept


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


def run_batches(extractor: EmbeddingExtractor, batches: List[List[Utterance]], strict: bool = False,
                progress_every: float = 10.0,
                progress: bool = False) -> Tuple[List[Tuple[str, np.ndarray]], Dict[str, float], List[str]]:
    """Embed planned batches: ``(key, vector)`` pairs, durations (seconds) and the skipped keys.

    An unreadable or too-short utterance is skipped with a warning (``strict``: an AudioError).
    Progress is logged every ``progress_every`` seconds (rate, real-time factor, ETA); ``progress``
    also shows a tqdm bar on a terminal.
    """
    results, durations, skipped = [], {}, []
    total = sum(len(b) for b in batches)
    bar = None
    if progress and total > 1:
        from tqdm import tqdm
        bar = tqdm(total=total, desc="extracting", unit="utt", disable=None, leave=False)
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
            results.extend(zip(keys, extractor.embed_keyed(keys, feats)))
        done += len(batch)
        if bar is not None:
            bar.update(len(batch))
        now = time.time()
        if now - t_last >= progress_every or done == total:
            rate = done / max(now - t0, 1e-9)
            logger.info("extracted %d/%d utterances, %.1f utt/s, real-time factor %.4f, ETA %.0f s",
                        done, total, rate, (now - t0) / max(audio_seconds, 1e-9), (total - done) / max(rate, 1e-9))
            t_last = now
    if bar is not None:
        bar.close()
    return results, durations, skipped


def write_utt2dur(path: str, keys: Sequence[str], durations: Dict[str, float]) -> None:
    """``utt2dur``: ``key seconds`` with 4 decimals (0.1 ms), in ``keys`` order, written atomically."""
    with atomic_output(path) as f:
        f.writelines(f"{k} {float(durations[k]):.4f}\n" for k in keys)


@dataclasses.dataclass(frozen=True)
class _JobSpec:
    """What a job process needs to build its extractor (plain, picklable values)."""

    model_dir: str
    backend: str
    checkpoint: Optional[str]
    device: str
    precision: str
    optimize: bool
    trust_checkpoint: bool
    threads: int
    strict: bool
    postprocess: Optional[PostProcess]
    progress: bool = False


def _job_main(job: int, spec: _JobSpec, batches: List[List[Utterance]], out_prefix: str,
              extractor: Optional[EmbeddingExtractor] = None) -> None:
    if extractor is None:
        from wespk.utils.logs import setup_logging
        setup_logging(0)
        torch.set_num_threads(spec.threads)
        device = spec.device
        if device.startswith("cuda") and torch.cuda.device_count() > 1:
            device = f"cuda:{job % torch.cuda.device_count()}"
        extractor = EmbeddingExtractor.from_model_dir(spec.model_dir, spec.backend, device, spec.checkpoint,
                                                      spec.precision, spec.optimize, spec.threads,
                                                      spec.trust_checkpoint, spec.postprocess)
    results, durations, skipped = run_batches(extractor, batches, spec.strict, progress=spec.progress)
    write_embeddings(f"{out_prefix}.ark", f"{out_prefix}.scp", results)
    write_utt2dur(f"{out_prefix}.utt2dur", [k for k, _ in results], durations)
    with atomic_output(f"{out_prefix}.skipped") as f:
        f.writelines(f"{k}\n" for k in skipped)


def _spawned_job_main(*args) -> None:
    """A job in its own process: wespk owns the process, so its allocator may be tuned."""
    from wespk.utils.malloc import keep_large_allocations_in_heap
    keep_large_allocations_in_heap()
    _job_main(*args)


def npy_paths(utts: Sequence[Utterance]) -> Dict[str, str]:
    """Where ``--format npy`` puts each utterance's vector, relative to the output dir.

    An utterance that is a whole audio file gets the file's path relative to
    the common directory of all such files, with the extension replaced by
    ``.npy`` (``spk1/rec1.flac`` -> ``spk1/rec1.npy``), so the tree mirrors the
    input. A segment, a pipe command, a shard member, or a file used by more
    than one utterance gets ``<key>.npy``. Keys and paths that would leave the
    output dir (``..``, absolute) or land on the same file are errors.
    """
    def whole_file(u: Utterance) -> bool:
        ref = u.audio
        return (ref is not None and not ref.is_pipe and ref.start is None and ref.end is None
                and ref.member_offset < 0 and ref.member_bytes is None)

    files = [os.path.abspath(u.audio.path) for u in utts if whole_file(u)]
    uses: Dict[str, int] = {}
    for path in files:
        uses[path] = uses.get(path, 0) + 1
    unique = [p for p in files if uses[p] == 1]
    root = os.path.commonpath([os.path.dirname(p) for p in unique]) if unique else ""
    out: Dict[str, str] = {}
    owner: Dict[str, str] = {}
    for u in utts:
        path = os.path.abspath(u.audio.path) if whole_file(u) else None
        if path is not None and uses[path] == 1:
            rel = os.path.splitext(os.path.relpath(path, root))[0] + ".npy"
        else:
            rel = os.path.normpath(u.key) + ".npy"
            if os.path.isabs(rel) or rel.split(os.sep)[0] == "..":
                raise ValueError(f"utterance key {u.key!r} would be written outside the output dir")
        if rel in owner:
            raise ValueError(f"utterances {owner[rel]!r} and {u.key!r} would both be written to {rel}")
        owner[rel] = u.key
        out[u.key] = rel
    return out


def write_npy_tree(out_dir: str, items: Sequence[Tuple[str, np.ndarray]], relpaths: Dict[str, str]) -> str:
    """One ``.npy`` (float32 ``[D]``) per key at ``out_dir/relpaths[key]``, each written atomically, and the
    index ``out_dir/npy.scp`` (``key path``); returns the index's path."""
    index = []
    for key, vector in items:
        path = os.path.join(out_dir, relpaths[key])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_output(path, "wb") as f:
            np.save(f, np.asarray(vector, dtype=np.float32))
        index.append(f"{key} {path}\n")
    scp = os.path.join(out_dir, "npy.scp")
    with atomic_output(scp) as f:
        f.writelines(index)
    return scp


def extract_embeddings(data: str, model_dir: str, out_dir: str, nj: int = 1, batch_size: int = 16,
                       device: str = "cpu", checkpoint: Optional[str] = None, strict: bool = False,
                       precision: str = "fp32", max_padding: float = DEFAULT_MAX_PADDING,
                       optimize: bool = True, trust_checkpoint: bool = False, backend: str = "auto",
                       format: str = "ark", postprocess: Optional[PostProcess] = None,
                       num_threads: Optional[int] = None, progress: bool = False,
                       extractor: Optional[EmbeddingExtractor] = None) -> int:
    """Extract every utterance of ``data`` into ``out_dir``; returns the number of embeddings written.

    ``data`` is a data dir, a ``wav.scp`` or a raw list
    (:func:`wespk.data.data_dir.read_utterances`); ``model_dir`` a model dir
    or model file for ``backend`` (``checkpoint``: an explicit model file).
    The list is cut into length-sorted batches (:func:`plan_batches`:
    ``batch_size``, ``max_padding``), the batches are dealt to ``nj`` jobs
    (processes), and their outputs are merged in list order. ``format``
    ``ark``: ``xvector.{ark,scp}``; ``npy``: one ``.npy`` per utterance in a
    tree mirroring the input paths (:func:`npy_paths`) and its index
    ``npy.scp``. Also writes ``utt2dur`` (seconds, :func:`write_utt2dur`) and,
    when utterances had to be skipped (unreadable, too short), ``skipped``.
    ``precision``/``optimize`` apply to the PyTorch backend; ``num_threads``
    (default: the cores shared among the jobs) to each job. ``progress``
    shows a bar (one job). ``extractor``: an extractor of this model already
    loaded in this process, used when there is one job (the API's); its own
    post-processing step then applies.
    """
    from wespk.inference.model_dir import resolve_model_dir
    if format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown format {format!r}; choose from {', '.join(OUTPUT_FORMATS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    resolved = resolve_model_dir(model_dir, backend, model_file=checkpoint)  # errors before any audio is read
    utts = read_utterances(data)
    if not utts:
        raise DataFileError(data, None, "no utterances")
    relpaths = npy_paths(utts) if format == "npy" else {}
    order = {u.key: i for i, u in enumerate(utts)}
    batches = plan_batches(utts, batch_size, max_padding)
    nj = max(1, min(nj, len(batches)))
    os.makedirs(out_dir, exist_ok=True)
    tmp_dir = os.path.join(out_dir, ".jobs")
    os.makedirs(tmp_dir, exist_ok=True)
    if num_threads:
        threads = int(num_threads)
    elif nj == 1:
        threads = torch.get_num_threads()
    else:
        threads = max(1, (os.cpu_count() or 1) // nj) if device == "cpu" else 1
    spec = _JobSpec(resolved.model_dir, resolved.backend, resolved.model_file, device, precision, optimize,
                    trust_checkpoint, threads, strict, postprocess, progress)
    prefixes = [os.path.join(tmp_dir, f"xvector.{j + 1}") for j in range(nj)]
    logger.info("extracting %d utterances in %d batches with %d job(s) on %s (%s backend)",
                len(utts), len(batches), nj, device, resolved.backend)
    if nj == 1:
        _job_main(0, spec, batches, prefixes[0], extractor)
    else:
        if resolved.backend == "torch":
            # Each job reads the model file itself; read it once here first, so that a file refused by
            # the checkpoint reader (it could run code, or it is damaged) stops with one line, not one
            # traceback per job.
            from wespk.io.checkpoint import load_state_dict
            load_state_dict(resolved.model_file, trust=trust_checkpoint)
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_spawned_job_main, args=(j, spec, batches[j::nj], prefixes[j]))
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
    if format == "npy":
        write_npy_tree(out_dir, merged, relpaths)
        count = len(merged)
    else:
        count = write_embeddings(os.path.join(out_dir, "xvector.ark"), os.path.join(out_dir, "xvector.scp"),
                                 merged)
    write_utt2dur(os.path.join(out_dir, "utt2dur"), [k for k, _ in merged], durations)
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
