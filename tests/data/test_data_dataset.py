"""The training stream: batches, rank/worker split, exact resume, chunks, classes."""

import itertools
import json
import os

import numpy as np
import pytest
import soundfile
import torch
from torch.utils.data import DataLoader

from wespk.data import processors
from wespk.data.dataset import (BalancedSpeakerDataset, SpeakerDataset, build_context,
                                count_utterances, read_spk2id)
from wespk.data.dataset_args import resolve_dataset_args
from wespk.data.data_dir import read_data_dir, read_utterances
from wespk.data.processors import assign_groups, check_entries, key_hash, read_audio, take_chunk

FAST = {"num_frms": 40, "speed_perturb": False, "aug_prob": 0.0,
        "fbank_args": {"num_mel_bins": 40, "frame_shift": 10, "frame_length": 25, "dither": 0.0}}


def take(dataset, num_batches, num_workers=0):
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    return list(itertools.islice(iter(loader), num_batches))


def test_batches_have_the_documented_shape(raw_list, spk2id, noise_dirs):
    args = {"num_frms": 60, "aug_prob": 0.6, "noise_data": noise_dirs[0], "reverb_data": noise_dirs[1],
            "spec_aug": True}
    dataset = SpeakerDataset(raw_list, "raw", args, spk2id, batch_size=5)
    assert dataset.num_speakers == 4 and dataset.num_classes == 12
    batches = take(dataset, 6)
    keys = {e.key for e in read_utterances(raw_list)}
    for batch in batches:
        assert batch["feats"].shape == (5, 60, 80) and batch["feats"].dtype == torch.float32
        assert batch["labels"].dtype == torch.long and batch["lengths"].tolist() == [60] * 5
        assert set(batch["keys"]) <= keys and batch["num_skipped"] == 0
        assert torch.isfinite(batch["feats"]).all()
    labels = torch.cat([b["labels"] for b in batches])
    assert labels.min() >= 0 and labels.max() < 12
    # Speed blocks: label = speaker + 4 * speed index, speaker from spk2id.
    utt2spk = {e.key: e.speaker for e in read_utterances(raw_list)}
    for batch in batches:
        for key, label in zip(batch["keys"], batch["labels"].tolist()):
            assert label % 4 == spk2id[utt2spk[key]]
    assert len({label // 4 for label in labels.tolist()}) == 3
    augmented = sum(v for k, v in dataset.stats.items() if k.startswith("augment_"))
    assert 6 <= augmented <= 30  # about 0.6 of 30


def test_cmn_applies_to_chunks_without_spec_aug(raw_list, spk2id):
    batch = take(SpeakerDataset(raw_list, "raw", dict(FAST), spk2id, batch_size=4), 1)[0]
    assert batch["feats"].mean(dim=1).abs().max() < 1e-3
    raw = take(SpeakerDataset(raw_list, "raw", {**FAST, "cmn": False}, spk2id, batch_size=4), 1)[0]
    assert raw["feats"].mean(dim=1).abs().max() > 1.0


@pytest.mark.parametrize("speed, classes, expected", [(True, "separate", 12), (True, "same", 4),
                                                      (False, "separate", 4)])
def test_num_classes(raw_list, spk2id, speed, classes, expected):
    dataset = SpeakerDataset(raw_list, "raw", {"speed_perturb": speed, "speed_perturb_classes": classes},
                             spk2id)
    assert dataset.num_classes == expected
    labels = take(SpeakerDataset(raw_list, "raw", {**FAST, "speed_perturb": speed,
                                                   "speed_perturb_classes": classes}, spk2id,
                                 batch_size=8), 4)
    assert max(int(b["labels"].max()) for b in labels) < expected


@pytest.mark.parametrize("kind", ["raw", "shard", "shard_fewer_than_slots"])
def test_each_utterance_once_per_pass_over_two_ranks_and_two_workers(kind, raw_list, shard_list, data_dir,
                                                                       spk2id, tmp_path, make_shards):
    if kind == "raw":
        data_list, data_type = raw_list, "raw"
    elif kind == "shard":
        data_list, data_type = shard_list, "shard"
    else:
        data_list, data_type = make_shards(data_dir, str(tmp_path), 2), "shard"
    all_keys = sorted(e.key for e in read_data_dir(data_dir))
    per_slot = len(all_keys) // 4          # 16 utterances, 2 ranks x 2 workers
    batch_size = 2
    seen = []
    for rank in range(2):
        dataset = SpeakerDataset(data_list, data_type, dict(FAST), spk2id, seed=5, batch_size=batch_size,
                                 rank=rank, world_size=2)
        dataset.set_epoch(3)
        batches = take(dataset, 2 * per_slot // batch_size, num_workers=2)
        for batch in batches:
            seen.extend(batch["keys"])
    assert sorted(seen) == all_keys


@pytest.mark.parametrize("data_type, num_workers", [("raw", 0), ("raw", 2), ("shard", 2)])
def test_resume_is_bit_identical(data_type, num_workers, raw_list, shard_list, spk2id, noise_dirs):
    args = {"num_frms": 50, "aug_prob": 0.8, "noise_data": noise_dirs[0], "reverb_data": noise_dirs[1],
            "spec_aug": True, "shuffle_args": {"shuffle_size": 5}}
    data_list = raw_list if data_type == "raw" else shard_list

    def run(skip, count):
        dataset = SpeakerDataset(data_list, data_type, args, spk2id, seed=11, batch_size=3)
        dataset.set_epoch(2, skip_batches=skip)
        return take(dataset, count, num_workers)

    full = run(0, 9)
    resumed = run(5, 4)
    for original, again in zip(full[5:], resumed):
        assert original["keys"] == again["keys"]
        assert torch.equal(original["labels"], again["labels"])
        assert torch.equal(original["feats"], again["feats"])
    # Different epochs give different orders; the same epoch the same batches.
    assert [b["keys"] for b in run(0, 3)] == [b["keys"] for b in full[:3]]


def test_epochs_shuffle_differently(raw_list, spk2id):
    def keys(epoch):
        dataset = SpeakerDataset(raw_list, "raw", dict(FAST), spk2id, batch_size=16)
        dataset.set_epoch(epoch)
        return take(dataset, 1)[0]["keys"]

    assert keys(0) == keys(0)
    assert keys(0) != keys(1)
    assert sorted(keys(0)) == sorted(keys(1))  # one batch = one whole pass here


def _checked_samples(raw_list, spk2id, args, seed=(1, 0, 0)):
    ctx = build_context(resolve_dataset_args(args), spk2id, "raw", train=True)
    samples = ({"key": e.key, "spk": e.speaker, "entry": e, "seed": (*seed, *key_hash(e.key))}
               for e in read_utterances(raw_list))
    return ctx, list(assign_groups(check_entries(samples, ctx), 4))


def test_chunk_is_read_alone_and_is_a_slice_of_the_utterance(raw_list, spk2id, monkeypatch):
    requested = []
    real_read = processors.read_audio_span

    def spy(ref, offset=0, num_samples=None):
        requested.append((offset, num_samples))
        return real_read(ref, offset, num_samples)

    monkeypatch.setattr(processors, "read_audio_span", spy)
    args = {**FAST, "num_frms": 100}
    ctx, samples = _checked_samples(raw_list, spk2id, args)
    chunk = ctx.chunk_samples
    assert chunk == 99 * 160 + 400
    for sample in take_chunk(read_audio(iter(samples), ctx), ctx):
        full, _ = soundfile.read(sample["entry"].audio.path, dtype="float32")
        wav = sample["wav"]
        assert len(wav) == chunk
        starts = np.flatnonzero(full[: len(full) - chunk + 1] == wav[0])
        assert any(np.array_equal(full[s:s + chunk], wav) for s in starts)
    # Only about a chunk was decoded from each (longer) utterance.
    assert all(num is not None and num <= chunk + 1 for _, num in requested)


def test_chunk_with_speed_and_resampling_has_exact_length(raw_list, spk2id):
    args = {**FAST, "num_frms": 100, "speed_perturb": True, "resample_rate": 8000}
    ctx, samples = _checked_samples(raw_list, spk2id, args)
    stream = processors.choose_speed(iter(samples), ctx)
    stream = processors.apply_speed(processors.resample_audio(read_audio(stream, ctx), ctx), ctx)
    speeds = set()
    for sample in take_chunk(stream, ctx):
        assert len(sample["wav"]) == 99 * 80 + 200
        speeds.add(sample["speed"])
    assert speeds == {0.9, 1.0, 1.1}


def test_short_utterances_are_repeated_to_the_chunk(raw_list, spk2id):
    args = {**FAST, "num_frms": 1000}  # 10 s, longer than every utterance
    ctx, samples = _checked_samples(raw_list, spk2id, args)
    for sample in take_chunk(read_audio(iter(samples[:3]), ctx), ctx):
        full, _ = soundfile.read(sample["entry"].audio.path, dtype="float32")
        expected = np.tile(full, ctx.chunk_samples // len(full) + 1)[: ctx.chunk_samples]
        assert np.array_equal(sample["wav"], expected)


def test_segments_flow_through_the_pipeline(data_dir, spk2id, tmp_path):
    # A data dir whose utterances are 1.2 s pieces of the recordings.
    entries = read_data_dir(data_dir)[:4]
    seg_dir = tmp_path / "seg"
    seg_dir.mkdir()
    with open(seg_dir / "wav.scp", "w") as f:
        f.writelines(f"rec{i} {e.audio.path}\n" for i, e in enumerate(entries))
    with open(seg_dir / "segments", "w") as f:
        f.writelines(f"{e.key}-a rec{i} 0.50 1.70\n" for i, e in enumerate(entries))
    with open(seg_dir / "utt2spk", "w") as f:
        f.writelines(f"{e.key}-a {e.speaker}\n" for e in entries)
    from wespk.data.dataset import EvalDataset
    from wespk.features.fbank import compute_fbank
    for (key, feats), entry in zip(EvalDataset(str(seg_dir), "raw", {"cmn": False}), entries):
        full, rate = soundfile.read(entry.audio.path, dtype="float32")
        expected = compute_fbank(full[8000:27200], rate)
        assert key == f"{entry.key}-a"
        assert torch.allclose(feats, expected, atol=1e-5)
    batches = take(SpeakerDataset(str(seg_dir), "raw", {**FAST, "num_frms": 50,
                                                        "filter_args": {"min_num_frames": 50}},
                                  spk2id, batch_size=4), 2)
    assert all(b["feats"].shape == (4, 50, 40) for b in batches)


def test_balanced_batches(raw_list, spk2id):
    dataset = BalancedSpeakerDataset(raw_list, "raw", dict(FAST), spk2id, num_spks=2, num_utts_per_spk=3,
                                     seed=3)
    assert dataset.batches_per_pass == 2
    batches = take(dataset, 4)
    utt2spk = {e.key: e.speaker for e in read_utterances(raw_list)}
    for batch in batches:
        assert batch["feats"].shape == (6, 40, 40)
        groups = [batch["keys"][i * 3:(i + 1) * 3] for i in range(2)]
        speakers = [{utt2spk[k] for k in g} for g in groups]
        assert all(len(s) == 1 for s in speakers) and speakers[0] != speakers[1]
        assert all(len(set(g)) == 3 for g in groups)  # without replacement
        labels = batch["labels"].view(2, 3)
        assert (labels == labels[:, :1]).all()
    # A pass covers every speaker once.
    first_pass = {utt2spk[k] for b in batches[:2] for k in b["keys"]}
    assert len(first_pass) == 4
    dataset.set_epoch(0, skip_batches=2)
    resumed = take(dataset, 2)
    for original, again in zip(batches[2:], resumed):
        assert original["keys"] == again["keys"] and torch.equal(original["feats"], again["feats"])


def test_spk2id_and_counts(data_dir, raw_list, shard_list):
    expected = {"aishell-S0913": 0, "arctic-slt": 1, "cvtw-0ca034bbac": 2, "vctk-p225": 3}
    assert read_spk2id(os.path.join(data_dir, "utt2spk")) == expected
    assert read_spk2id(data_dir) == expected
    assert read_spk2id(raw_list) == expected
    assert read_spk2id(shard_list) == expected
    assert count_utterances(raw_list) == count_utterances(shard_list) == count_utterances(data_dir, "raw") == 16


def test_unknown_dataset_args_are_errors(raw_list, spk2id):
    with pytest.raises(ValueError, match=r"unknown dataset_args key\(s\) \['speed_pertub'\].*known keys"):
        SpeakerDataset(raw_list, "raw", {"speed_pertub": True}, spk2id)
    with pytest.raises(ValueError, match="dataset_args.fbank_args"):
        SpeakerDataset(raw_list, "raw", {"fbank_args": {"num_mel_bin": 80}}, spk2id)
    with pytest.raises(ValueError, match="data_type"):
        SpeakerDataset(raw_list, "wav", {}, spk2id)


def test_feat_lists_and_offline_features(data_dir, spk2id, tmp_path):
    from wespk.bin.compute_fbank import main as compute_fbank_main
    from wespk.data.dataset import EvalDataset
    out = str(tmp_path / "fbank")
    assert compute_fbank_main(["--nj", "2", data_dir, out]) == 0
    dataset = SpeakerDataset(os.path.join(out, "feats.scp"), "feat", {"num_frms": 70}, spk2id, batch_size=4)
    assert dataset.num_classes == 4  # no speed perturbation on features
    batch = take(dataset, 1)[0]
    assert batch["feats"].shape == (4, 70, 80)
    offline = dict(EvalDataset(os.path.join(out, "feats.scp"), "feat", {}))
    online = dict(EvalDataset(data_dir, "raw", {}))
    assert offline.keys() == online.keys() and len(offline) == 16
    for key in online:
        assert torch.allclose(offline[key], online[key], atol=1e-4)


def test_json_raw_list_with_relative_paths(corpus_dir, spk2id, tmp_path):
    speaker = "arctic-slt"
    names = sorted(os.listdir(os.path.join(corpus_dir, speaker)))
    link = tmp_path / "audio"
    os.symlink(os.path.join(corpus_dir, speaker), link)
    with open(tmp_path / "raw.list", "w") as f:
        for name in names:
            f.write(json.dumps({"key": f"{speaker}_{name}", "wav": f"audio/{name}", "spk": speaker}) + "\n")
    batch = take(SpeakerDataset(str(tmp_path / "raw.list"), "raw", dict(FAST), spk2id, batch_size=4), 1)[0]
    assert batch["labels"].tolist() == [spk2id[speaker]] * 4


TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools")


@pytest.mark.skipif(not os.path.isfile(os.path.join(TOOLS, "make_shard_list.py")),
                    reason="tools/make_shard_list.py not present")
def test_lists_written_by_the_tools(data_dir, spk2id, tmp_path):
    import subprocess
    import sys
    raw = str(tmp_path / "raw.list")
    shards = str(tmp_path / "shard.list")
    for command in ([os.path.join(TOOLS, "make_raw_list.py"), data_dir, raw],
                    [os.path.join(TOOLS, "make_shard_list.py"), "--num_utts_per_shard", "5", data_dir,
                     str(tmp_path / "shards"), shards]):
        proc = subprocess.run([sys.executable, *command], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    expected = sorted(e.key for e in read_data_dir(data_dir))
    for data_list, data_type in ((raw, "raw"), (shards, "shard")):
        dataset = SpeakerDataset(data_list, data_type, dict(FAST), spk2id, batch_size=4, train=False)
        assert sorted(k for b in dataset for k in b["keys"]) == expected
        assert count_utterances(data_list) == 16


def test_eval_features_keep_list_order_with_workers(raw_list):
    from wespk.data.dataset import EvalDataset, iter_eval_features
    from wespk.features.fbank import apply_cmn, compute_fbank
    in_process = list(iter_eval_features(raw_list, "raw", {}))
    keys = [e.key for e in read_utterances(raw_list)]
    assert [k for k, _ in in_process] == keys
    loader = DataLoader(EvalDataset(raw_list, "raw", {}), batch_size=None, num_workers=2)
    with_workers = list(loader)
    assert [k for k, _ in with_workers] == keys
    # Workers run with one thread, this process with several: fbank's FFT and mel product may differ
    # in the last float32 bits with the thread count; 1e-4 is far below what any model resolves.
    for (_, a), (_, b) in zip(in_process, with_workers):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)
    # Whole utterances, no dither: exactly the fbank of the file, mean-normalised.
    path = read_utterances(raw_list)[0].audio.path
    samples, rate = soundfile.read(path, dtype="float32")
    assert torch.allclose(in_process[0][1], apply_cmn(compute_fbank(samples, rate)), atol=1e-5)
    halves = [list(iter_eval_features(raw_list, "raw", {}, part=(j, 2))) for j in range(2)]
    assert [k for part in halves for k, _ in part] == keys


def test_vad_in_the_pipeline(data_dir, tmp_path):
    from wespk.data.dataset import EvalDataset
    entry = read_data_dir(data_dir)[0]
    speech, rate = soundfile.read(entry.audio.path, dtype="float32")
    quiet = (np.random.default_rng(0).standard_normal(rate) * 1e-4).astype(np.float32)
    padded = tmp_path / "padded.wav"
    soundfile.write(padded, np.concatenate([quiet, speech, quiet]), rate)
    (tmp_path / "wav.scp").write_text(f"utt {padded}\n")
    plain = dict(EvalDataset(str(tmp_path / "wav.scp"), "raw", {}))["utt"]
    with_vad = dict(EvalDataset(str(tmp_path / "wav.scp"), "raw", {"vad": "energy"}))["utt"]
    assert plain.shape[0] - with_vad.shape[0] >= 180  # about 2 s of padding gone
    assert with_vad.shape[0] >= 0.6 * len(speech) / 160


def test_noise_processor_mixes_at_the_snr(raw_list, spk2id, noise_dirs):
    args = {**FAST, "num_frms": 100, "aug_prob": 1.0, "noise_data": noise_dirs[0],
            "noise_snr": {"noise": [10, 10], "babble": [4, 4]}}
    ctx, samples = _checked_samples(raw_list, spk2id, args)
    assert ctx.augment_kinds == ["babble", "noise"]
    clean = {s["key"]: s["wav"].copy() for s in take_chunk(read_audio(iter(samples), ctx), ctx)}
    ctx, samples = _checked_samples(raw_list, spk2id, args)  # fresh generators: same chunks
    mixed = list(processors.add_noise_reverb(take_chunk(read_audio(iter(samples), ctx), ctx), ctx))
    assert {s["augment"] for s in mixed} == {"babble", "noise"}
    for sample in mixed:
        speech = clean[sample["key"]]
        noise = sample["wav"] - speech
        snr = 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
        assert abs(snr - (10 if sample["augment"] == "noise" else 4)) < 0.5


def test_batches_do_not_depend_on_how_workers_start(raw_list, spk2id, noise_dirs):
    from wespk.train.trainer import worker_context
    args = {"num_frms": 50, "aug_prob": 0.8, "noise_data": noise_dirs[0], "reverb_data": noise_dirs[1],
            "spec_aug": True}

    def run(method):
        dataset = SpeakerDataset(raw_list, "raw", args, spk2id, seed=5, batch_size=3)
        dataset.set_epoch(3)
        loader = DataLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context=worker_context(method))
        return list(itertools.islice(iter(loader), 4))

    forked, served = run("fork"), run("forkserver")  # the trainer's default
    for a, b in zip(forked, served):
        assert a["keys"] == b["keys"] and torch.equal(a["feats"], b["feats"])
    assert worker_context("default") is None
    with pytest.raises(ValueError, match="multiprocessing_context 'threads' is not available"):
        worker_context("threads")
