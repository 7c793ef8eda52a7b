"""Datasets the training loop and the extractor iterate.

* :class:`SpeakerDataset` - the training stream: an infinite
  ``IterableDataset`` of batches, split between DDP ranks and DataLoader
  workers, reproducible from ``(seed, epoch)`` and resumable mid-epoch.
* :class:`BalancedSpeakerDataset` - batches of N speakers x M utterances
  (GE2E and other metric-learning losses).
* :class:`EvalDataset` / :func:`iter_eval_features` - whole utterances for
  embedding extraction: no dither, no crop, no augmentation.

Use them with ``DataLoader(dataset, batch_size=None, num_workers=N)`` (the
datasets batch themselves) and without ``persistent_workers`` (each epoch's
``set_epoch`` must reach the workers, which are started per ``iter()``).
"""

import itertools
import logging
import os
from collections import Counter, OrderedDict
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch.utils.data import IterableDataset

from wespk.augment.noise import NoiseSet
from wespk.augment.reverb import RirSet
from wespk.data.dataset_args import resemblyzer_mel_args, resolve_dataset_args
from wespk.data.data_dir import read_json_lines, read_utterances
from wespk.data.lists import DATA_TYPES, detect_data_type, read_entries, read_feat_list, read_shard_list
from wespk.data.records import Utterance
from wespk.data.shards import index_shard
from wespk.data.processors import (DataPipelineError, PipelineContext, Sample, _check_one,
                                   add_noise_reverb, apply_spec_aug, apply_speed, apply_vad,
                                   assign_groups, check_entries, choose_speed, collate,
                                   collate_groups, default_chunk_samples, extract_fbank,
                                   extract_resemblyzer_mel,
                                   key_hash, normalize_mean, read_audio, read_feats,
                                   resample_audio, take_chunk, take_feat_chunk,
                                   waveform_as_feat)
from wespk.data.sampler import (batches_to_skip, iter_list_entries, iter_shard_entries, pass_rng,
                                resolve_rank, resolve_worker, worker_role)
from wespk.features.fbank import FbankExtractor
from wespk.features.resemblyzer_mel import FRAME_LENGTH_MS as RESEMBLYZER_FRAME_LENGTH_MS
from wespk.features.resemblyzer_mel import FRAME_SHIFT_MS as RESEMBLYZER_FRAME_SHIFT_MS
from wespk.features.vad import VoiceActivityDetector
from wespk.io.files import DataFileError, read_kaldi_map

logger = logging.getLogger(__name__)

__all__ = ["SpeakerDataset", "BalancedSpeakerDataset", "EvalDataset", "iter_eval_features",
           "read_spk2id", "count_utterances", "DataPipelineError"]


# ----------------------------------------------------------- list helpers ---
def _speakers_of(path: str) -> List[str]:
    """Speaker of every utterance in a utt2spk, data dir, raw/feat list or shard list."""
    if os.path.isdir(path):
        path = os.path.join(path, "utt2spk")
    if not os.path.isfile(path):
        raise DataFileError(path, None, "file not found")
    if os.path.basename(path) == "spk2utt":
        return list(read_kaldi_map(path))
    kind = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                kind = "json" if line.lstrip().startswith("{") else (
                    "shard" if line.split()[0].endswith((".tar", ".tar.gz", ".tgz")) else "kaldi")
                break
    if kind is None:
        return []
    if kind == "json":
        return [str(obj["spk"]) for _, obj in read_json_lines(path, ("spk",))]
    if kind == "shard":
        return [e.speaker for shard in read_shard_list(path) for e in index_shard(shard, probe=False)
                if e.speaker is not None]
    return list(read_kaldi_map(path).values())


def read_spk2id(utt2spk_or_list_path: str) -> Dict[str, int]:
    """Speaker -> class index (0..N-1 over the sorted speakers).

    Accepts a ``utt2spk`` (or ``spk2utt``) file, a data dir, a raw or feature
    JSON-lines list, or a shard list (whose ``.spk`` members are read).
    """
    speakers = sorted(set(_speakers_of(utt2spk_or_list_path)), key=lambda s: s.encode("utf-8"))
    return OrderedDict((spk, index) for index, spk in enumerate(speakers))


def count_utterances(data_list: str, data_type: Optional[str] = None) -> int:
    """Utterances in a list (shards are indexed, not decoded)."""
    data_type = data_type or detect_data_type(data_list)
    if data_type == "shard":
        return sum(len(index_shard(s, probe=False)) for s in read_shard_list(data_list))
    if os.path.isfile(data_list) and data_type in ("raw", "feat"):
        with open(data_list, encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "")
        if first.lstrip().startswith("{"):
            with open(data_list, encoding="utf-8") as f:
                return sum(1 for line in f if line.strip())
    return len(read_entries(data_list, data_type, need_spk=False))


# ------------------------------------------------------------- pipelines ---
def build_context(args: Dict[str, Any], spk2id: Dict[str, int], data_type: str,
                  train: bool, need_labels: bool = True,
                  whole_utterances: bool = False) -> PipelineContext:
    """A :class:`PipelineContext` from resolved ``dataset_args``.

    ``train`` switches on the random parts (speed, noise, reverb, dither,
    SpecAugment); ``whole_utterances`` (extraction) switches off chunking
    and the length filter.
    """
    fbank = args["fbank_args"]
    sample_rate = int(args["resample_rate"])
    frame_shift, frame_length = float(fbank["frame_shift"]), float(fbank["frame_length"])
    audio = data_type != "feat"
    # resemblyzer_mel chunks the frames of the whole utterance's features (its silence trimming
    # changes the length), as the feature lists do
    frame_chunks = not audio or args["feature_type"] == "resemblyzer_mel"
    if args["feature_type"] == "resemblyzer_mel":
        frame_shift, frame_length = RESEMBLYZER_FRAME_SHIFT_MS, RESEMBLYZER_FRAME_LENGTH_MS
    num_frms = 0 if whole_utterances else int(args["num_frms"] or 0)
    filtering = bool(args["filter"]) and not whole_utterances
    filter_args = args["filter_args"]
    min_frames = int(filter_args.get("min_num_frames") or 0) if filtering else 0
    max_frames = int(filter_args.get("max_num_frames") or 0) if filtering else 0
    if train and not audio and (args["speed_perturb"] or args["noise_data"] or args["reverb_data"]):
        logger.info("data_type 'feat': speed perturbation, noise and reverberation need audio; "
                    "they are off for this list")
    speed = bool(args["speed_perturb"]) and train and audio
    noise_set = rir_set = None
    if train and audio and float(args["aug_prob"]) > 0:
        if args["noise_data"]:
            noise_set = NoiseSet(args["noise_data"], args["noise_snr"],
                                 {"speech": args["babble_num_speakers"]})
        if args["reverb_data"]:
            rir_set = RirSet(args["reverb_data"])
    return PipelineContext(
        spk2id=dict(spk2id),
        num_speakers=(max(spk2id.values()) + 1) if spk2id else 0,
        sample_rate=sample_rate,
        resample=bool(args["resample"]),
        train=train,
        strict=bool(args["strict"]),
        chunk_samples=default_chunk_samples(num_frms, sample_rate, frame_length, frame_shift)
        if num_frms and not frame_chunks else None,
        chunk_frames=num_frms if num_frms and frame_chunks else None,
        min_samples=int(min_frames * frame_shift / 1000 * sample_rate),
        max_samples=int(max_frames * frame_shift / 1000 * sample_rate) if max_frames and not frame_chunks
        else None,
        min_frames=min_frames,
        max_frames=max_frames or None,
        speed_perturb=speed,
        speed_classes=args["speed_perturb_classes"],
        aug_prob=float(args["aug_prob"]) if train else 0.0,
        noise_set=noise_set,
        rir_set=rir_set,
        extractor=FbankExtractor(sample_rate, int(fbank["num_mel_bins"]), frame_length, frame_shift,
                                 fbank.get("backend", "auto")) if audio and not frame_chunks else None,
        dither=float(fbank["dither"]) if train else 0.0,
        cmn=bool(args["cmn"]),
        spec_aug=bool(args["spec_aug"]) and train,
        spec_aug_args=dict(args["spec_aug_args"]),
        vad=VoiceActivityDetector(args["vad"], args["vad_args"]) if args["vad"] and audio else None,
        need_labels=need_labels,
        waveform=args["frontend"] == "waveform",
        feature_type=args["feature_type"],
        resemblyzer_args=resemblyzer_mel_args(args),
    )


def process_samples(samples: Iterator[Sample], ctx: PipelineContext, data_type: str) -> Iterator[Sample]:
    """Checked samples -> samples with ``feat``, through every enabled processor."""
    if data_type == "feat":
        stream = read_feats(samples, ctx)
        stream = take_feat_chunk(stream, ctx)
    else:
        stream = choose_speed(samples, ctx)
        stream = read_audio(stream, ctx)
        stream = resample_audio(stream, ctx)
        stream = apply_vad(stream, ctx)
        stream = apply_speed(stream, ctx)
        stream = take_chunk(stream, ctx)
        stream = add_noise_reverb(stream, ctx)
        if ctx.waveform:
            return waveform_as_feat(stream, ctx)
        if ctx.feature_type == "resemblyzer_mel":
            stream = take_feat_chunk(extract_resemblyzer_mel(stream, ctx), ctx)
        else:
            stream = extract_fbank(stream, ctx)
    stream = normalize_mean(stream, ctx)
    return apply_spec_aug(stream, ctx)


def _check_data_type(data_type: str) -> str:
    if data_type not in DATA_TYPES:
        raise ValueError(f"unknown data_type {data_type!r}; choose from {', '.join(DATA_TYPES)}")
    return data_type


def _make_sample(entry: Utterance, seed: Tuple[int, ...], pass_index: int = 0) -> Sample:
    return {"key": entry.key, "spk": entry.speaker, "entry": entry, "seed": seed, "pass": pass_index}


# -------------------------------------------------------------- training ---
class _TrainingStream(IterableDataset):
    """What the training datasets share: counters, class counts, epochs."""

    context: PipelineContext

    @property
    def stats(self) -> Counter:
        """Counters of this process: ``skipped``, ``skipped_<reason>``, ``augment_<kind>`` ..."""
        return self.context.stats

    @property
    def num_speakers(self) -> int:
        """Speaker classes before speed perturbation."""
        return self.context.num_speakers

    @property
    def num_classes(self) -> int:
        """Output classes: ``num_speakers`` x 3 when each speed has its own classes
        (0.9 -> labels + N, 1.1 -> labels + 2N, as in WeSpeaker)."""
        if self.context.speed_perturb and self.context.speed_classes == "separate":
            return self.num_speakers * 3
        return self.num_speakers

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Start epoch ``epoch``; continue as if ``skip_batches`` batches of this
        rank's DataLoader had been consumed already (exact resume)."""
        if skip_batches < 0:
            raise ValueError(f"skip_batches must be >= 0, got {skip_batches}")
        self.epoch = int(epoch)
        self.skip_batches = int(skip_batches)
        self.rank, self.world_size = resolve_rank(self._given_rank, self._given_world_size)


class SpeakerDataset(_TrainingStream):
    """The training stream: batches ``{"keys", "feats" [B, T, F], "labels" [B],
    "lengths" [B], "num_skipped"}``.

    Infinite: pass after pass over the list, pass ``p`` of epoch ``e``
    shuffled with ``(seed, e, p)``; the loop takes a fixed number of steps per
    epoch (``num_utts // (world_size * batch_size)``, as WeSpeaker does).
    Each pass gives every utterance to exactly one (rank, worker). Batch
    ``i`` of a worker is made of the ``i``-th ``batch_size`` usable list
    entries of its share (entries that fail to decode leave it smaller and
    are counted in ``num_skipped``).

    ``rank``/``world_size`` default to torch.distributed's when initialised
    (read at construction and at each :meth:`set_epoch`). With
    ``train=False`` (validation) the stream is one unshuffled pass with no
    speed perturbation, noise, dither or SpecAugment; chunks stay (drawn
    from the seed, so they are the same every time).

    ``stats`` counts skipped and augmented samples of this process (with
    DataLoader workers, each worker has its own; use the batches'
    ``num_skipped``).
    """

    def __init__(self, data_list: str, data_type: str, dataset_args: Optional[Dict[str, Any]],
                 spk2id: Dict[str, int], seed: int = 42, batch_size: int = 32, train: bool = True,
                 rank: Optional[int] = None, world_size: Optional[int] = None):
        super().__init__()
        self.data_list = data_list
        self.data_type = _check_data_type(data_type)
        self.args = resolve_dataset_args(dataset_args)
        if not spk2id:
            raise ValueError("spk2id is empty")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.spk2id = dict(spk2id)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.train = bool(train)
        self._given_rank, self._given_world_size = rank, world_size
        self.rank, self.world_size = resolve_rank(rank, world_size)
        self.epoch = 0
        self.skip_batches = 0
        self.context = build_context(self.args, self.spk2id, self.data_type, self.train)
        if self.data_type == "shard":
            self.shards = read_shard_list(data_list)
            self.entries: Optional[List[Utterance]] = None
            if not self.shards:
                raise DataFileError(data_list, None, "shard list is empty")
        else:
            self.shards = []
            self.entries = read_entries(data_list, self.data_type)
            if not self.entries:
                raise DataFileError(data_list, None, "list is empty")

    @property
    def num_utterances(self) -> int:
        """Utterances in the list (a shard list is counted by indexing its shards)."""
        if self.entries is not None:
            return len(self.entries)
        return count_utterances(self.data_list, "shard")

    def _entries(self, slot: int, num_slots: int) -> Iterator[Tuple[Utterance, int]]:
        shuffle = bool(self.args["shuffle"]) and self.train
        if self.entries is not None:
            return iter_list_entries(self.entries, self.seed, self.epoch, shuffle, slot, num_slots,
                                     infinite=self.train)
        return iter_shard_entries(self.shards, self.seed, self.epoch, shuffle,
                                  int(self.args["shuffle_args"]["shuffle_size"]), slot, num_slots,
                                  infinite=self.train)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        worker, num_workers = resolve_worker()
        # The DataLoader takes batch i from worker i % num_workers. After
        # skipping k batches, this worker plays the part of the worker that
        # would have made batch k + worker.
        role = worker_role(worker, num_workers, self.skip_batches)
        slot = self.rank * num_workers + role
        num_slots = self.world_size * num_workers
        ctx = self.context
        samples = (_make_sample(entry, (self.seed, self.epoch, pass_index, *key_hash(entry.key)), pass_index)
                   for entry, pass_index in self._entries(slot, num_slots))
        samples = assign_groups(check_entries(samples, ctx), self.batch_size)
        skip = batches_to_skip(self.skip_batches, role, num_workers) * self.batch_size
        if skip:
            samples = itertools.islice(samples, skip, None)
        yield from collate_groups(process_samples(samples, ctx, self.data_type), ctx)


class BalancedSpeakerDataset(_TrainingStream):
    """Batches of ``num_spks`` speakers x ``num_utts_per_spk`` utterances.

    Batches ``{"keys", "feats" [N*M, T, F], "labels", "lengths", "num_skipped"}``
    are speaker-major (utterances of the first speaker, then the second...),
    so ``feats.view(N, M, T, F)`` groups them. In each pass the speakers are
    permuted with ``(seed, epoch, pass)`` and cut into blocks of N; a speaker's
    utterances are drawn without replacement (with replacement when it has
    fewer than M). Batch ``b`` of the global sequence goes to the slot
    ``b % (world_size * num_workers)``; an utterance that fails is replaced by
    another of the same speaker, a speaker with none usable by the next
    speaker of the pass. Infinite, reproducible, resumable like
    :class:`SpeakerDataset`; ``num_classes`` counts speed classes the same way.
    """

    def __init__(self, data_list: str, data_type: str, dataset_args: Optional[Dict[str, Any]],
                 spk2id: Dict[str, int], num_spks: int = 64, num_utts_per_spk: int = 10,
                 seed: int = 42, train: bool = True, rank: Optional[int] = None,
                 world_size: Optional[int] = None):
        super().__init__()
        self.data_type = _check_data_type(data_type)
        self.args = resolve_dataset_args(dataset_args)
        self.spk2id = dict(spk2id)
        self.num_spks, self.num_utts_per_spk = int(num_spks), int(num_utts_per_spk)
        self.seed, self.train = int(seed), bool(train)
        self._given_rank, self._given_world_size = rank, world_size
        self.rank, self.world_size = resolve_rank(rank, world_size)
        self.epoch, self.skip_batches = 0, 0
        self.context = build_context(self.args, self.spk2id, self.data_type, self.train)
        entries = read_entries(data_list, self.data_type)
        by_speaker: Dict[str, List[Utterance]] = {}
        for entry in entries:
            if entry.speaker in self.spk2id:
                by_speaker.setdefault(entry.speaker, []).append(entry)
        self.speakers = sorted(by_speaker, key=lambda s: s.encode("utf-8"))
        self.utterances = [by_speaker[s] for s in self.speakers]
        if len(self.speakers) < self.num_spks:
            raise ValueError(f"{data_list}: {len(self.speakers)} speakers, fewer than "
                             f"num_spks={self.num_spks} per batch")

    @property
    def batches_per_pass(self) -> int:
        """Batches in one pass over the speakers."""
        return len(self.speakers) // self.num_spks

    def _process(self, entry: Utterance, seed: Tuple[int, ...]) -> Optional[Sample]:
        sample = _make_sample(entry, seed)
        if not _check_one(sample, entry, self.context):
            return None
        return next(iter(process_samples(iter([sample]), self.context, self.data_type)), None)

    def _speaker_samples(self, speaker: int, pass_index: int, block: int) -> List[Sample]:
        """``num_utts_per_spk`` processed samples of one speaker for one batch."""
        utts = self.utterances[speaker]
        order = [int(i) for i in pass_rng(self.seed, self.epoch, pass_index, block, speaker)
                 .permutation(len(utts))]
        wanted = self.num_utts_per_spk
        good: List[Sample] = []
        usable: List[int] = []
        occurrence = 0
        candidates = order
        while len(good) < wanted and candidates:
            added = 0
            for index in candidates:
                if len(good) == wanted:
                    break
                entry = utts[index]
                sample = self._process(entry, (self.seed, self.epoch, pass_index, *key_hash(entry.key),
                                               block, occurrence))
                if sample is not None:
                    sample.pop("rng", None)
                    good.append(sample)
                    added += 1
                    if occurrence == 0:
                        usable.append(index)
            if added == 0:
                break
            # Fewer utterances than wanted: draw the usable ones again.
            occurrence += 1
            candidates = usable
        return good

    def _batch(self, batch_index: int) -> Dict[str, Any]:
        per_pass = self.batches_per_pass
        pass_index, block = divmod(batch_index, per_pass)
        order = [int(i) for i in pass_rng(self.seed, self.epoch, pass_index).permutation(len(self.speakers))]
        chosen = order[block * self.num_spks:(block + 1) * self.num_spks]
        spare = order[(block + 1) * self.num_spks:] + order[:block * self.num_spks]
        skipped_before = self.stats["skipped"]
        samples: List[Sample] = []
        for speaker in chosen:
            got = self._speaker_samples(speaker, pass_index, block)
            while not got and spare:
                replacement = spare.pop(0)
                logger.warning("speaker %s has no usable utterance; using %s in its place",
                               self.speakers[speaker], self.speakers[replacement])
                speaker = replacement
                got = self._speaker_samples(speaker, pass_index, block)
            if not got:
                raise DataPipelineError("no speaker with a usable utterance is left for a balanced batch")
            samples.extend(got)
        return collate(samples, self.stats["skipped"] - skipped_before)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        worker, num_workers = resolve_worker()
        role = worker_role(worker, num_workers, self.skip_batches)
        slot = self.rank * num_workers + role
        num_slots = self.world_size * num_workers
        batch_index = slot + batches_to_skip(self.skip_batches, role, num_workers) * num_slots
        limit = self.batches_per_pass if not self.train else None
        while limit is None or batch_index < limit:
            yield self._batch(batch_index)
            batch_index += num_slots


# ------------------------------------------------------------ evaluation ---
class EvalDataset(IterableDataset):
    """Whole utterances for extraction: yields ``(key, feats [T, F])``.

    No dither, no crop, no augmentation; resampling, VAD and CMN as in
    ``dataset_args``. Accepts any list the training reads, or a ``wav.scp``
    (segments next to it are applied) without speakers. With DataLoader
    workers, utterance ``i`` goes to worker ``i % num_workers``, so batches
    come out in list order. Bad input is skipped with a warning (an error in
    strict mode); ``stats`` counts it (per process). ``part=(j, n)`` keeps the
    j-th of n contiguous parts of the list (Kaldi-style ``--nj`` jobs).
    """

    def __init__(self, data_list_or_wav_scp: str, data_type: Optional[str] = None,
                 dataset_args: Optional[Dict[str, Any]] = None,
                 part: Optional[Tuple[int, int]] = None):
        super().__init__()
        self.data_list = data_list_or_wav_scp
        self.data_type = _check_data_type(data_type or detect_data_type(data_list_or_wav_scp))
        self.args = resolve_dataset_args(dataset_args)
        self.context = build_context(self.args, {}, self.data_type, train=False, need_labels=False,
                                     whole_utterances=True)
        if self.data_type == "shard":
            self.entries = [e for s in read_shard_list(self.data_list) for e in index_shard(s)]
        elif self.data_type == "feat":
            self.entries = read_feat_list(self.data_list, need_spk=False)
        else:
            self.entries = read_utterances(self.data_list, need_spk=False)
        if part is not None:
            index, count = part
            if not 0 <= index < count:
                raise ValueError(f"part must be (index, count) with 0 <= index < count, got {part}")
            total = len(self.entries)
            self.entries = self.entries[total * index // count:total * (index + 1) // count]

    @property
    def stats(self) -> Counter:
        """Counters of this process (``skipped``, ``skipped_<reason>``)."""
        return self.context.stats

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Tuple[str, torch.Tensor]]:
        worker, num_workers = resolve_worker()
        mine = (e for i, e in enumerate(self.entries) if i % num_workers == worker)
        samples = (_make_sample(e, (0, 0, 0, *key_hash(e.key))) for e in mine)
        checked = (s for s in samples if _check_one(s, s["entry"], self.context))
        for sample in process_samples(checked, self.context, self.data_type):
            yield str(sample["key"]), sample["feat"]


def iter_eval_features(data_list_or_wav_scp: str, data_type: Optional[str] = None,
                       dataset_args: Optional[Dict[str, Any]] = None,
                       part: Optional[Tuple[int, int]] = None) -> Iterator[Tuple[str, torch.Tensor]]:
    """``(key, feats [T, F])`` for each utterance in list order, in this process
    (see :class:`EvalDataset`)."""
    return iter(EvalDataset(data_list_or_wav_scp, data_type, dataset_args, part))
