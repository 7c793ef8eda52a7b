"""The online pipeline: small generator functions over an iterator of samples.

A sample is a dict. It enters with ``key``, ``spk``, ``entry`` (the list
entry), ``pass`` (which pass over the list) and ``seed`` (a tuple); each processor adds or replaces fields and
passes it on, or drops it (bad input: counted and named in a warning, or an
error in strict mode). The order for audio is::

    check_entries -> choose_speed -> read_audio -> resample_audio -> apply_vad
    -> apply_speed -> take_chunk -> add_noise_reverb -> extract_fbank
    -> normalize_mean -> apply_spec_aug -> collate_groups

with ``feature_type: resemblyzer_mel`` (the converted GE2E encoder's input) the
whole utterance is augmented and turned into features, and the chunk is cut
from the frames, since the front end's silence trimming changes the length::

    check_entries -> choose_speed -> read_audio -> resample_audio -> apply_speed
    -> add_noise_reverb -> extract_resemblyzer_mel -> take_feat_chunk
    -> apply_spec_aug -> collate_groups

and for precomputed features ``check_entries -> read_feats -> take_feat_chunk
-> normalize_mean -> apply_spec_aug -> collate_groups``.

Every random choice about a sample is drawn from ``sample_rng(sample)``, a
generator seeded by ``(seed, epoch, pass, hash(key))``: a sample gets the same
speed, chunk, noise, dither and masks whichever rank or worker processes it
and whatever was processed before it. That is what lets a resumed run skip
samples without decoding them.
"""

import hashlib
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Set, Tuple

import numpy as np
import torch

from wespk.augment.noise import NoiseSet
from wespk.augment.reverb import RirSet, reverberate
from wespk.augment.speed import SPEED_FACTORS, speed_perturb
from wespk.features.fbank import FbankExtractor, apply_cmn, num_samples_for_frames
from wespk.features.resemblyzer_mel import frontend_features
from wespk.features.spec_augment import spec_augment
from wespk.features.vad import VoiceActivityDetector
from wespk.io.audio import AudioError, Resampler, probe_audio, read_audio_span

logger = logging.getLogger(__name__)

Sample = Dict[str, object]


class DataPipelineError(RuntimeError):
    """Bad input in strict mode, or a list that cannot feed the pipeline."""


def key_hash(key: str) -> Tuple[int, int]:
    """A process-independent 64-bit hash of ``key`` as two 32-bit ints."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little")


def sample_rng(sample: Sample) -> np.random.Generator:
    """The sample's own random generator (created on first use from ``seed``)."""
    rng = sample.get("rng")
    if rng is None:
        rng = np.random.default_rng(np.random.SeedSequence(list(sample["seed"])))
        sample["rng"] = rng
    return rng


@dataclass
class PipelineContext:
    """Settings and shared objects of one pipeline instance (one per process).

    ``stats`` counts what happened (``skipped``, ``skipped_<reason>``,
    ``augment_failed`` ...); ``warned`` holds keys already warned about, so a
    bad utterance is named once per process rather than once per pass.
    """

    spk2id: Dict[str, int]
    num_speakers: int
    sample_rate: int = 16000
    resample: bool = True
    train: bool = True
    strict: bool = False
    chunk_samples: Optional[int] = None
    chunk_frames: Optional[int] = None
    min_samples: int = 0
    max_samples: Optional[int] = None
    min_frames: int = 0
    max_frames: Optional[int] = None
    speed_perturb: bool = False
    speed_classes: str = "separate"
    aug_prob: float = 0.0
    noise_set: Optional[NoiseSet] = None
    rir_set: Optional[RirSet] = None
    extractor: Optional[FbankExtractor] = None
    dither: float = 0.0
    cmn: bool = True
    spec_aug: bool = False
    spec_aug_args: Dict[str, float] = field(default_factory=dict)
    vad: Optional[VoiceActivityDetector] = None
    need_labels: bool = True
    waveform: bool = False
    #: ``fbank`` or ``resemblyzer_mel`` (then ``resemblyzer_args`` go to ``frontend_features``).
    feature_type: str = "fbank"
    resemblyzer_args: Dict[str, object] = field(default_factory=dict)
    resampler: Resampler = field(default_factory=Resampler)
    stats: Counter = field(default_factory=Counter)
    warned: Set[str] = field(default_factory=set)

    @property
    def augment_kinds(self) -> List[str]:
        """``reverb`` and each noise category, the choices of one augmentation."""
        kinds = ["reverb"] if self.rir_set is not None else []
        if self.noise_set is not None:
            kinds.extend(self.noise_set.categories)
        return kinds

    def report_bad(self, sample: Sample, reason: str, problem: str) -> None:
        """Count a dropped sample and warn naming it (or raise when strict)."""
        key = str(sample.get("key"))
        message = f"utterance {key} ({sample['entry'].source()}): {problem}"
        if self.strict:
            raise DataPipelineError(f"bad input: {message} (strict mode; set strict: false to skip it)")
        self.stats["skipped"] += 1
        self.stats[f"skipped_{reason}"] += 1
        if key not in self.warned:
            self.warned.add(key)
            logger.warning("skipping %s", message)


# ---------------------------------------------------------------- checks ---
def check_entries(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Sample]:
    """Drop what is bad before any decoding: unknown speaker, unreadable header,
    wrong rate with resampling off, too short. Fills ``label`` and ``info``.

    Raises :class:`DataPipelineError` when a whole pass of this process's
    share yields no usable sample (so a broken list never hangs training).
    """
    current_pass, usable, seen, examples = None, 0, 0, []
    for sample in samples:
        this_pass = sample.get("pass", 0)
        if current_pass is not None and this_pass != current_pass:
            if usable == 0:
                raise DataPipelineError(f"none of the {seen} utterances of this process's share "
                                        f"could be used, e.g. {'; '.join(examples[:3])}")
            usable, seen, examples = 0, 0, []
        current_pass = this_pass
        seen += 1
        entry = sample["entry"]
        skipped_before = ctx.stats["skipped"]
        if _check_one(sample, entry, ctx):
            usable += 1
            yield sample
        elif ctx.stats["skipped"] > skipped_before and len(examples) < 3:
            examples.append(str(sample["key"]))


def _check_one(sample: Sample, entry, ctx: PipelineContext) -> bool:
    if entry.error:
        ctx.report_bad(sample, "unreadable", entry.error)
        return False
    if ctx.need_labels:
        label = ctx.spk2id.get(entry.speaker) if entry.speaker is not None else None
        if label is None:
            ctx.report_bad(sample, "unknown_speaker", f"speaker {entry.speaker!r} is not in spk2id")
            return False
        sample["label"] = int(label)
    else:
        sample["label"] = -1
    if entry.feat is not None:
        if entry.num_frames is not None and entry.num_frames < max(ctx.min_frames, 1):
            ctx.report_bad(sample, "too_short", f"{entry.num_frames} frames, fewer than "
                                                f"{max(ctx.min_frames, 1)}")
            return False
        return True
    if entry.sample_rate is not None and entry.num_samples is not None:
        rate, count = entry.sample_rate, entry.num_samples
    else:
        try:
            info = probe_audio(entry.audio)
        except AudioError as e:
            ctx.report_bad(sample, "unreadable", str(e))
            return False
        rate, count = info.sample_rate, info.num_samples
    if rate != ctx.sample_rate and not ctx.resample:
        ctx.report_bad(sample, "sample_rate", f"sample rate {rate} Hz, expected {ctx.sample_rate} Hz "
                                              "(resampling is off)")
        return False
    target_count = int(count * ctx.sample_rate / rate)
    if target_count < max(ctx.min_samples, 1):
        ctx.report_bad(sample, "too_short", f"{count / rate:.3f} s, shorter than the minimum "
                                            f"{ctx.min_samples / ctx.sample_rate:.3f} s")
        return False
    sample["info"] = (rate, count)
    return True


def assign_groups(samples: Iterator[Sample], batch_size: int) -> Iterator[Sample]:
    """Number samples into batch groups: sample ``i`` goes to group ``i // batch_size``."""
    for index, sample in enumerate(samples):
        sample["group"] = index // batch_size
        sample["last_in_group"] = index % batch_size == batch_size - 1
        yield sample


# ----------------------------------------------------------------- audio ---
def choose_speed(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Sample]:
    """Draw a speed (1.0, 0.9 or 1.1, uniformly) and shift the label to its class block."""
    for sample in samples:
        index = int(sample_rng(sample).integers(len(SPEED_FACTORS))) if ctx.speed_perturb else 0
        sample["speed"] = SPEED_FACTORS[index]
        if index and ctx.speed_classes == "separate" and sample["label"] >= 0:
            sample["label"] = sample["label"] + ctx.num_speakers * index
        yield sample


def read_audio(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Sample]:
    """Decode the span the chunk needs (all of it for short utterances, whole
    utterances, or with VAD), plus a filter margin when it will be resampled.

    Sets ``wav``, ``sample_rate`` and ``crop`` (where the chunk starts in the
    decoded audio, in output samples, or None).
    """
    for sample in samples:
        rate, count = sample["info"]
        speed = float(sample.get("speed", 1.0))
        factor = ctx.sample_rate / (rate * speed)  # output samples per source sample
        length = ctx.chunk_samples if ctx.chunk_samples else ctx.max_samples
        offset, num, crop = 0, None, None
        if length and ctx.vad is None:
            out_total = int(count * factor)
            if out_total > length:
                chunk_start = int(sample_rng(sample).integers(0, out_total - length + 1))
                src_start = int(chunk_start / factor)
                src_len = int(math.ceil(length / factor)) + 1
                margin = 0 if factor == 1.0 else int(math.ceil(64 * max(1.0, 1.0 / factor)))
                offset = max(0, src_start - margin)
                num = min(count, src_start + src_len + margin) - offset
                crop = (src_start - offset) * factor
        try:
            wav, got_rate = read_audio_span(sample["entry"].audio, offset, num)
        except AudioError as e:
            ctx.report_bad(sample, "unreadable", str(e))
            continue
        sample["wav"], sample["sample_rate"], sample["crop"] = wav, got_rate, crop
        yield sample


def resample_audio(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Sample]:
    """Resample to the pipeline rate (``resample_rate``)."""
    for sample in samples:
        if sample["sample_rate"] != ctx.sample_rate:
            sample["wav"] = ctx.resampler.resample(sample["wav"], sample["sample_rate"], ctx.sample_rate)
            sample["sample_rate"] = ctx.sample_rate
        yield sample


def apply_vad(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Sample]:
    """Keep only the speech (when ``vad`` is configured)."""
    for sample in samples:
        if ctx.vad is not None:
            sample["wav"] = ctx.vad(sample["wav"], sample["sample_rate"])
        yield sample


def apply_speed(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Sample]:
    """Speed-perturb by the factor :func:`choose_speed` drew."""
    for sample in samples:
        speed = float(sample.get("speed", 1.0))
        if speed != 1.0:
            sample["wav"] = speed_perturb(sample["wav"], speed, ctx.resampler)
        yield sample


def random_chunk(data, length: int, rng: np.random.Generator):
    """``length`` items from a random offset, or the data repeated to ``length``.

    Works on 1-D waveforms (numpy) and on ``[frames, bins]`` tensors.
    """
    size = len(data)
    if size >= length:
        start = int(rng.integers(0, size - length + 1))
        return data[start:start + length]
    repeats = length // size + 1
    if isinstance(data, torch.Tensor):
        return data.repeat(repeats, *([1] * (data.dim() - 1)))[:length]
    return np.tile(data, (repeats,) + (1,) * (data.ndim - 1))[:length]


def take_chunk(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Sample]:
    """Cut the ``num_frms`` chunk (where :func:`read_audio` placed it, else at
    random); repeat short utterances to length."""
    for sample in samples:
        length = ctx.chunk_samples if ctx.chunk_samples else ctx.max_samples
        if length:
            wav = sample["wav"]
            crop = sample.get("crop")
            if crop is not None and len(wav) >= length:
                start = min(int(round(crop)), len(wav) - length)
                wav = wav[start:start + length]
            elif ctx.chunk_samples or len(wav) > length:
                wav = random_chunk(wav, length, sample_rng(sample))
            sample["wav"] = np.ascontiguousarray(wav)
        yield sample


def add_noise_reverb(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Sample]:
    """With probability ``aug_prob``, reverberate or add noise of one category
    (uniform over ``reverb`` and the noise categories present)."""
    kinds = ctx.augment_kinds
    for sample in samples:
        if kinds and ctx.aug_prob > 0.0:
            rng = sample_rng(sample)
            if rng.random() < ctx.aug_prob:
                kind = kinds[int(rng.integers(len(kinds)))]
                wav = sample["wav"]
                try:
                    if kind == "reverb":
                        key = ctx.rir_set.random_key(rng)
                        sample["wav"] = reverberate(wav, ctx.rir_set.load(key, ctx.sample_rate))
                    else:
                        noise, _ = ctx.noise_set.make_noise(wav, ctx.sample_rate, kind, rng)
                        sample["wav"] = wav + noise
                    sample["augment"] = kind
                    ctx.stats[f"augment_{kind}"] += 1
                except (AudioError, ValueError) as e:
                    if ctx.strict:
                        raise DataPipelineError(f"augmenting {sample['key']} with {kind}: {e}") from e
                    ctx.stats["augment_failed"] += 1
                    logger.warning("utterance %s left unaugmented: %s augmentation failed: %s",
                                   sample["key"], kind, e)
        yield sample


def extract_fbank(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Sample]:
    """Kaldi fbank of ``wav`` (dither only in training); drops non-finite results."""
    for sample in samples:
        dither = ctx.dither if ctx.train else 0.0
        feat = ctx.extractor(sample.pop("wav"), dither=dither,
                             generator=sample_rng(sample) if dither > 0 else None)
        if feat.shape[0] == 0:
            ctx.report_bad(sample, "too_short", "shorter than one frame")
            continue
        if not np.isfinite(feat.numpy()).all():
            ctx.report_bad(sample, "non_finite", "features contain NaN or Inf")
            continue
        sample["feat"] = feat
        yield sample


def extract_resemblyzer_mel(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Sample]:
    """The features of the ``resemblyzer_mel`` front end of ``wav``
    (:func:`wespk.features.resemblyzer_mel.frontend_features`, the function the
    inference front end calls: volume normalisation, silence trimming, 40-band
    linear mel with its trailing frames); drops non-finite results."""
    for sample in samples:
        wav = sample.pop("wav")
        if len(wav) == 0:
            ctx.report_bad(sample, "too_short", "empty waveform")
            continue
        feat = frontend_features(wav, ctx.sample_rate, ctx.resemblyzer_args)
        if not torch.isfinite(feat).all():
            ctx.report_bad(sample, "non_finite", "features contain NaN or Inf")
            continue
        sample["feat"] = feat
        yield sample


def waveform_as_feat(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Sample]:
    """The (augmented) waveform itself as ``feat`` [S, 1], for models with their own frontend."""
    for sample in samples:
        sample["feat"] = torch.from_numpy(np.ascontiguousarray(sample.pop("wav"), dtype=np.float32)).unsqueeze(1)
        yield sample


# -------------------------------------------------------------- features ---
def read_feats(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Sample]:
    """Load precomputed features (``feat`` entries) with kaldiio."""
    import kaldiio
    for sample in samples:
        try:
            matrix = kaldiio.load_mat(sample["entry"].feat)
        except Exception as e:  # kaldiio raises many types for bad arks
            ctx.report_bad(sample, "unreadable", f"cannot load features ({type(e).__name__}: {e})")
            continue
        feat = torch.from_numpy(np.array(matrix, dtype=np.float32))  # a writable copy
        if feat.dim() != 2 or feat.shape[0] < max(ctx.min_frames, 1):
            ctx.report_bad(sample, "too_short", f"feature matrix of shape {tuple(feat.shape)}")
            continue
        if not torch.isfinite(feat).all():
            ctx.report_bad(sample, "non_finite", "features contain NaN or Inf")
            continue
        sample["feat"] = feat
        yield sample


def take_feat_chunk(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Sample]:
    """``num_frms`` frames at random (repeat-padded); or at most ``max_num_frames``."""
    for sample in samples:
        feat = sample["feat"]
        if ctx.chunk_frames:
            feat = random_chunk(feat, ctx.chunk_frames, sample_rng(sample))
        elif ctx.max_frames and feat.shape[0] > ctx.max_frames:
            feat = random_chunk(feat, ctx.max_frames, sample_rng(sample))
        sample["feat"] = feat.contiguous()
        yield sample


def normalize_mean(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Sample]:
    """Subtract the per-utterance mean of each feature dimension (``cmn``)."""
    for sample in samples:
        if ctx.cmn:
            sample["feat"] = apply_cmn(sample["feat"])
        yield sample


def apply_spec_aug(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Sample]:
    """SpecAugment with probability ``spec_aug_args.prob`` (training only)."""
    args = ctx.spec_aug_args
    for sample in samples:
        if ctx.spec_aug and ctx.train:
            rng = sample_rng(sample)
            if rng.random() < float(args.get("prob", 0.6)):
                sample["feat"] = spec_augment(sample["feat"], rng,
                                              int(args.get("num_t_mask", 1)), int(args.get("num_f_mask", 1)),
                                              int(args.get("max_t", 10)), int(args.get("max_f", 8)))
        yield sample


# --------------------------------------------------------------- batches ---
def collate(samples: List[Sample], num_skipped: int = 0) -> Dict[str, object]:
    """A batch dict from processed samples (features zero-padded to the longest)."""
    feats = [s["feat"] for s in samples]
    lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
    longest = int(lengths.max()) if len(feats) else 0
    if all(f.shape[0] == longest for f in feats):
        stacked = torch.stack(feats) if feats else torch.zeros(0, 0, 0)
    else:
        stacked = torch.zeros(len(feats), longest, feats[0].shape[1], dtype=feats[0].dtype)
        for i, f in enumerate(feats):
            stacked[i, :f.shape[0]] = f
    return {
        "keys": [str(s["key"]) for s in samples],
        "feats": stacked,
        "labels": torch.tensor([int(s["label"]) for s in samples], dtype=torch.long),
        "lengths": lengths,
        "num_skipped": num_skipped,
    }


def collate_groups(samples: Iterator[Sample], ctx: PipelineContext) -> Iterator[Dict[str, object]]:
    """One batch per group of :func:`assign_groups`.

    Samples dropped while decoding leave their batch smaller. A group that
    lost every sample is reported (the batch count of this worker, and so an
    exact resume past this point, shifts by one).
    """
    items: List[Sample] = []
    current = None
    skipped_at_last_batch = ctx.stats["skipped"]

    def emit():
        nonlocal skipped_at_last_batch
        batch = collate(items, ctx.stats["skipped"] - skipped_at_last_batch)
        skipped_at_last_batch = ctx.stats["skipped"]
        return batch

    for sample in samples:
        group = sample["group"]
        if current is not None and group != current and items:
            yield emit()
            items = []
        if current is not None and group > current + 1:
            logger.warning("every utterance of %d batch(es) before batch group %d failed to load; "
                           "batches are renumbered from here, so a resume past this point is not exact",
                           group - current - 1, group)
        current = group
        sample.pop("rng", None)
        items.append(sample)
        if sample["last_in_group"]:
            yield emit()
            items = []
    if items:
        yield emit()


def default_chunk_samples(num_frms: int, sample_rate: int, frame_length: float,
                          frame_shift: float) -> int:
    """Samples that make exactly ``num_frms`` frames (WeSpeaker's chunk length)."""
    return num_samples_for_frames(num_frms, sample_rate, frame_length, frame_shift)
