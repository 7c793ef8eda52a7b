"""``dataset_args.feature_type: resemblyzer_mel``: the training pipeline gives the GE2E
encoder the features of its inference front end (after augmentation, chunked on frames),
and refuses the options that do not go with them."""

import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from wespk.data.dataset import (BalancedSpeakerDataset, EvalDataset, SpeakerDataset, build_context,
                                process_samples)
from wespk.data.dataset_args import resolve_dataset_args
from wespk.data.data_dir import read_utterances
from wespk.data.processors import (_check_one, add_noise_reverb, apply_speed, choose_speed, key_hash,
                                   read_audio, resample_audio, sample_rng)
from wespk.features.resemblyzer_mel import frontend_features
from wespk.inference.frontend import FeatureFrontend
from wespk.io.audio import load_audio
from wespk.pretrained.resemblyzer import RESEMBLYZER_DATASET_ARGS

#: the front end of the converted model dir, as its config.yaml has it
FRONTEND_ARGS = dict(RESEMBLYZER_DATASET_ARGS)
TRAIN_ARGS = {**FRONTEND_ARGS, "num_frms": 120, "speed_perturb": False, "aug_prob": 0.0,
              "filter_args": {"min_num_frames": 50, "max_num_frames": 800}}
# Both sides call wespk.features.resemblyzer_mel.frontend_features on the same float32
# samples, so the features agree to float32 rounding; the bound leaves room for nothing more.
RTOL, ATOL = 1e-6, 1e-7


def inference_features(path: str) -> torch.Tensor:
    samples, rate = load_audio(path)
    return FeatureFrontend({"dataset_args": FRONTEND_ARGS})(samples, rate)


def frame_offset(chunk: torch.Tensor, whole: torch.Tensor) -> int:
    """Where ``chunk`` starts in ``whole`` (-1 when it is no window of it)."""
    for start in range(whole.shape[0] - chunk.shape[0] + 1):
        if torch.allclose(whole[start:start + chunk.shape[0]], chunk, rtol=RTOL, atol=ATOL):
            return start
    return -1


def test_whole_utterances_equal_the_inference_front_end(raw_list):
    entries = read_utterances(raw_list)
    extracted = dict(itertools.islice(EvalDataset(raw_list, "raw", dict(FRONTEND_ARGS)), 3))
    assert len(extracted) == 3
    for entry in entries[:3]:
        expected = inference_features(entry.audio.path)
        assert expected.shape[1] == 40
        torch.testing.assert_close(extracted[entry.key], expected, rtol=RTOL, atol=ATOL)


def test_training_chunks_are_frames_of_the_inference_features(raw_list, spk2id):
    dataset = SpeakerDataset(raw_list, "raw", dict(TRAIN_ARGS), spk2id, batch_size=4)
    batch = next(iter(DataLoader(dataset, batch_size=None)))
    assert batch["feats"].shape == (4, 120, 40) and batch["lengths"].tolist() == [120] * 4
    paths = {e.key: e.audio.path for e in read_utterances(raw_list)}
    starts = []
    for key, chunk in zip(batch["keys"], batch["feats"]):
        whole = inference_features(paths[key])
        start = frame_offset(chunk, whole)
        assert start >= 0, f"{key}: the chunk is no window of the inference features"
        starts.append(start)
    assert len(set(starts)) > 1   # random chunks, not the first frames of each utterance


def test_augmentation_comes_before_the_features(raw_list, spk2id, noise_dirs):
    """With noise or reverberation on every utterance, the chunk is a window of the front
    end's features of the augmented waveform (the same per-sample random draws)."""
    args = resolve_dataset_args({**TRAIN_ARGS, "aug_prob": 1.0, "speed_perturb": True,
                                 "noise_data": noise_dirs[0], "reverb_data": noise_dirs[1]})
    ctx = build_context(args, spk2id, "raw", train=True)
    entries = read_utterances(raw_list)[:4]

    def samples():
        for entry in entries:
            sample = {"key": entry.key, "spk": entry.speaker, "entry": entry, "pass": 0,
                      "seed": (7, 1, 0, *key_hash(entry.key))}
            assert _check_one(sample, entry, ctx)
            yield sample

    chunks = {s["key"]: s["feat"] for s in process_samples(samples(), ctx, "raw")}
    augmented = list(add_noise_reverb(apply_speed(resample_audio(read_audio(
        choose_speed(samples(), ctx), ctx), ctx), ctx), ctx))
    assert {s["augment"] for s in augmented} and all("augment" in s for s in augmented)
    for sample in augmented:
        whole = frontend_features(sample["wav"], 16000, FRONTEND_ARGS)
        chunk = chunks[sample["key"]]
        assert chunk.shape == (120, 40)
        assert frame_offset(chunk, whole) >= 0, sample["key"]
        # not the clean utterance's features
        assert frame_offset(chunk, inference_features(sample["entry"].audio.path)) < 0
    assert any(s["speed"] != 1.0 for s in augmented)


def test_balanced_batches_for_ge2e(raw_list, spk2id):
    dataset = BalancedSpeakerDataset(raw_list, "raw", dict(TRAIN_ARGS), spk2id, num_spks=2,
                                     num_utts_per_spk=3)
    batch = next(iter(DataLoader(dataset, batch_size=None)))
    assert batch["feats"].shape == (6, 120, 40)
    labels = batch["labels"].view(2, 3)
    assert (labels == labels[:, :1]).all() and labels[0, 0] != labels[1, 0]


@pytest.mark.parametrize("given, message", [
    ({"fbank_args": {"num_mel_bins": 40}}, "dataset_args fbank_args: not used by feature_type resemblyzer_mel"),
    ({"cmn": True}, "dataset_args cmn: not used by feature_type resemblyzer_mel"),
    ({"vad": "energy"}, "trims silences itself (trim_silence, not vad)"),
    ({"num_mel_bins": 80}, "dataset_args.num_mel_bins must be 40 with feature_type resemblyzer_mel"),
    ({"resample_rate": 8000}, "dataset_args.resample_rate must be 16000 with feature_type resemblyzer_mel"),
    ({"frontend": "waveform"}, "it cannot go with frontend 'waveform'"),
    ({"feature_type": "mfcc"}, "dataset_args.feature_type 'mfcc' is not supported by the data pipeline"),
    ({"feature_type": "fbank"}, "dataset_args frame_length, frame_shift, num_mel_bins, target_dbfs, "
                                "trim_silence: keys of feature_type resemblyzer_mel, but feature_type is fbank"),
])
def test_incompatible_options_are_refused(given, message, raw_list, spk2id):
    with pytest.raises(ValueError) as error:
        SpeakerDataset(raw_list, "raw", {**FRONTEND_ARGS, **given}, spk2id)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_fbank_configs_are_unchanged(raw_list, spk2id):
    """The default feature_type is fbank: 80 Kaldi bins, mean-normalised."""
    args = {"num_frms": 60, "speed_perturb": False, "aug_prob": 0.0,
            "fbank_args": {"num_mel_bins": 80, "frame_shift": 10, "frame_length": 25, "dither": 0.0}}
    batch = next(iter(DataLoader(SpeakerDataset(raw_list, "raw", args, spk2id, batch_size=2), batch_size=None)))
    assert batch["feats"].shape == (2, 60, 80)
    assert float(batch["feats"].mean(dim=1).abs().max()) < 1e-3
    assert resolve_dataset_args(args)["feature_type"] == "fbank"
    assert np.isfinite(batch["feats"].numpy()).all()


def test_a_training_config_gives_the_same_inference_front_end(raw_list):
    """A fine-tuned model dir's config.yaml holds the training pipeline's keys too: the
    inference front end leaves them to the pipeline; other unknown keys are still errors."""
    path = read_utterances(raw_list)[0].audio.path
    samples, rate = load_audio(path)
    training = {**TRAIN_ARGS, "aug_prob": 0.6, "noise_data": "data/aug/noise", "shuffle": True}
    torch.testing.assert_close(FeatureFrontend({"dataset_args": training})(samples, rate),
                               inference_features(path), rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown resemblyzer_mel dataset_args key.s. trim_silense"):
        FeatureFrontend({"dataset_args": {**training, "trim_silense": False}})(samples, rate)
