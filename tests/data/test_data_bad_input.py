"""Bad input is skipped with a warning naming the utterance and counted, or is an
error in strict mode; a list with nothing usable fails instead of hanging."""

import itertools
import json
import io
import logging
import tarfile

import numpy as np
import pytest
import soundfile
from torch.utils.data import DataLoader

from wespk.data.dataset import EvalDataset, SpeakerDataset
from wespk.data.data_dir import read_utterances
from wespk.data.shards import index_shard
from wespk.data.processors import DataPipelineError

FAST = {"num_frms": 40, "speed_perturb": False, "aug_prob": 0.0,
        "fbank_args": {"num_mel_bins": 40, "frame_shift": 10, "frame_length": 25, "dither": 0.0}}


def loader_error(loader, num_batches):
    """The exception the loader raises within ``num_batches`` (None if none).

    The iterator is shut down here, before the exception leaves: a DataLoader
    iterator kept alive by a traceback is only collected later, when its
    queues may already be closed, and then takes 10 s to stop its workers.
    """
    batches = iter(loader)
    error = None
    try:
        for _ in range(num_batches):
            next(batches)
    except Exception as e:  # noqa: BLE001 - returned to the test
        error = e
        error.__traceback__ = None
    del batches
    return error


def make_bad_files(folder):
    """``{key: (path, spk, reason)}`` for each kind of bad input."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    bad = {}
    (folder / "garbage.wav").write_bytes(b"RIFF" + rng.integers(0, 255, 3000, dtype=np.uint8).tobytes())
    bad["bad-corrupt"] = (str(folder / "garbage.wav"), "unreadable")
    (folder / "empty.wav").write_bytes(b"")
    bad["bad-empty"] = (str(folder / "empty.wav"), "unreadable")
    bad["bad-missing"] = (str(folder / "missing.wav"), "unreadable")
    soundfile.write(folder / "short.wav", rng.standard_normal(4000).astype(np.float32) * 0.1, 16000)
    bad["bad-short"] = (str(folder / "short.wav"), "too_short")
    soundfile.write(folder / "rate8k.wav", rng.standard_normal(24000).astype(np.float32) * 0.1, 8000)
    bad["bad-rate"] = (str(folder / "rate8k.wav"), "sample_rate")
    nan = rng.standard_normal(48000).astype(np.float32) * 0.1
    nan[100:] = np.nan  # any chunk of it holds NaN
    soundfile.write(folder / "nan.wav", nan, 16000, subtype="FLOAT")
    bad["bad-nan"] = (str(folder / "nan.wav"), "unreadable")
    return bad


@pytest.fixture
def mixed_list(raw_list, tmp_path):
    """The 16 good utterances plus one of each bad kind (speaker of a good one)."""
    bad = make_bad_files(tmp_path / "bad")
    good = [json.loads(line) for line in open(raw_list)]
    rows = [{"key": key, "wav": wav, "spk": good[0]["spk"]} for key, (wav, _) in bad.items()]
    rows.append({"key": "bad-speaker", "wav": good[1]["wav"], "spk": "nobody"})
    path = tmp_path / "mixed.list"
    with open(path, "w") as f:
        # Interleaved: two good utterances, one bad, ...; a good one last.
        for i, obj in enumerate(good):
            f.write(json.dumps(obj) + "\n")
            if i % 2 == 1 and rows:
                f.write(json.dumps(rows.pop(0)) + "\n")
    assert not rows
    return str(path), bad


def test_bad_input_is_skipped_named_and_counted(mixed_list, spk2id, caplog):
    data_list, bad = mixed_list
    args = {**FAST, "resample": False, "num_frms": 300}
    dataset = SpeakerDataset(data_list, "raw", args, spk2id, batch_size=4, train=False)
    with caplog.at_level(logging.WARNING, logger="wespk.data"):
        batches = list(DataLoader(dataset, batch_size=None, num_workers=0))
    seen = [k for b in batches for k in b["keys"]]
    assert sorted(seen) == sorted(e.key for e in read_utterances(data_list) if not e.key.startswith("bad-"))
    for key in list(bad) + ["bad-speaker"]:
        assert any(key in record.getMessage() for record in caplog.records), f"{key} not named"
    stats = dataset.stats
    assert stats["skipped"] == 7
    assert stats["skipped_unreadable"] == 4      # corrupt, empty, missing, NaN
    assert stats["skipped_too_short"] == 1
    assert stats["skipped_sample_rate"] == 1
    assert stats["skipped_unknown_speaker"] == 1
    assert sum(b["num_skipped"] for b in batches) == 7
    # 17 entries pass the header checks (groups of 4, 4, 4, 4, 1); NaN is
    # only found when decoding, so its batch is one short.
    assert sorted(len(b["keys"]) for b in batches) == [1, 3, 4, 4, 4]


def test_bad_input_with_workers_never_hangs(mixed_list, spk2id):
    data_list, _ = mixed_list
    dataset = SpeakerDataset(data_list, "raw", {**FAST, "resample": False}, spk2id, batch_size=4)
    loader = DataLoader(dataset, batch_size=None, num_workers=2, timeout=60)
    batches = list(itertools.islice(iter(loader), 10))
    assert all(not k.startswith("bad-") for b in batches for k in b["keys"])
    assert sum(b["num_skipped"] for b in batches) >= 7


@pytest.mark.parametrize("bad_key", ["bad-corrupt", "bad-empty", "bad-missing", "bad-short",
                                     "bad-rate", "bad-nan", "bad-speaker"])
def test_strict_mode_raises_naming_the_utterance(mixed_list, spk2id, tmp_path, bad_key):
    data_list, _ = mixed_list
    lines = [line for line in open(data_list) if f'"{bad_key}"' in line]
    single = tmp_path / "single.list"
    single.write_text("".join(lines))
    dataset = SpeakerDataset(str(single), "raw", {**FAST, "strict": True, "resample": False,
                                                  "num_frms": 300}, spk2id, batch_size=1)
    with pytest.raises(DataPipelineError, match=bad_key):
        next(iter(dataset))


def test_resampling_makes_other_rates_usable(mixed_list, spk2id, tmp_path):
    data_list, _ = mixed_list
    lines = [line for line in open(data_list) if '"bad-rate"' in line]
    single = tmp_path / "rate.list"
    single.write_text("".join(lines))
    batch = next(iter(SpeakerDataset(str(single), "raw", {**FAST}, spk2id, batch_size=2)))
    assert batch["feats"].shape == (2, 40, 40)


def test_a_list_with_nothing_usable_fails_instead_of_hanging(tmp_path, spk2id):
    path = tmp_path / "missing.list"
    with open(path, "w") as f:
        for i in range(5):
            f.write(json.dumps({"key": f"u{i}", "wav": str(tmp_path / f"nope{i}.wav"),
                                "spk": "arctic-slt"}) + "\n")
    dataset = SpeakerDataset(str(path), "raw", dict(FAST), spk2id, batch_size=2)
    with pytest.raises(DataPipelineError, match="none of the 5 utterances"):
        next(iter(dataset))
    error = loader_error(DataLoader(dataset, batch_size=None, num_workers=2, timeout=60), 1)
    assert isinstance(error, DataPipelineError) and "none of the" in str(error)


def test_more_slots_than_utterances_is_an_error(raw_list, spk2id, tmp_path):
    lines = open(raw_list).readlines()[:3]
    path = tmp_path / "three.list"
    path.write_text("".join(lines))
    # Rank 3 of 4 (one worker each): three utterances leave it nothing.
    dataset = SpeakerDataset(str(path), "raw", dict(FAST), spk2id, batch_size=1, rank=3, world_size=4)
    with pytest.raises(DataPipelineError, match="got no utterances"):
        next(iter(dataset))
    assert next(iter(SpeakerDataset(str(path), "raw", dict(FAST), spk2id, batch_size=1, rank=2,
                                    world_size=4)))["keys"]


def test_damaged_shards(data_dir, make_shards, tmp_path, spk2id, caplog):
    shard_list = make_shards(data_dir, str(tmp_path / "shards"), 2)
    first, second = [line.strip() for line in open(shard_list)]
    # Truncate the first shard in the middle of its third member.
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    cut = members[5].offset_data + 100
    with open(first, "r+b") as f:
        f.truncate(cut)
    # Rewrite the second shard without one .spk member.
    with tarfile.open(second) as tar:
        kept = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    dropped_key = kept[0][0].name.rsplit(".", 1)[0]
    with tarfile.open(second, "w") as tar:
        for member, payload in kept[1:]:
            tar.addfile(member, io.BytesIO(payload))
    with caplog.at_level(logging.WARNING, logger="wespk.data"):
        entries = index_shard(first)
    assert any("damaged" in r.getMessage() and first in r.getMessage() for r in caplog.records)
    assert len(entries) == 3 and entries[2].error is not None and entries[0].error is None
    dataset = SpeakerDataset(shard_list, "shard", dict(FAST), spk2id, batch_size=2, train=False)
    with caplog.at_level(logging.WARNING, logger="wespk.data"):
        keys = [k for b in dataset for k in b["keys"]]
    assert len(keys) == 2 + 7
    assert dropped_key not in keys
    assert any(dropped_key in r.getMessage() and "no .spk" in r.getMessage() for r in caplog.records)


def test_eval_skips_bad_input_and_strict_raises(mixed_list):
    data_list, bad = mixed_list
    with pytest.raises(DataPipelineError, match="bad-corrupt"):
        list(EvalDataset(data_list, "raw", {"strict": True}))
    evaluated = EvalDataset(data_list, "raw", {"resample": False})
    keys = [key for key, _ in evaluated]
    # Extraction needs no speaker and takes short audio.
    assert "bad-speaker" in keys and "bad-short" in keys
    assert not any(k in keys for k in bad if k != "bad-short")
    assert evaluated.stats["skipped"] == len(bad) - 1  # short audio is fine for extraction
