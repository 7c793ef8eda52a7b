"""Validation EER during training (wespk.train.validation, hooked in by wespk.bin.train):
real training runs on the bundled corpus, the recorded EER checked against the scoring stages."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import CORPUS
from tests.train.test_training import env_for_tests, run_train, tiny_config, tiny_data, write_config  # noqa: F401
from wespk.train.validation import (EpochValidation, best_epoch_window, epochs_without_improvement,
                                    read_validation_records)


@pytest.fixture(scope="module")
def dev_set(tmp_path_factory):
    """A data dir of 12 test utterances (4 speakers never trained on) and its trials."""
    root = tmp_path_factory.mktemp("dev")
    wav_scp, utt2spk = [], []
    for spk_dir in sorted((CORPUS / "test").iterdir())[:4]:
        for path in sorted(spk_dir.glob("*.flac"))[:3]:
            wav_scp.append(f"{path.stem} {path}")
            utt2spk.append(f"{path.stem} {spk_dir.name}")
    (root / "wav.scp").write_text("\n".join(sorted(wav_scp)) + "\n")
    (root / "utt2spk").write_text("\n".join(sorted(utt2spk)) + "\n")
    subprocess.run([sys.executable, "-m", "wespk.bin.make_trials", "--seed", "1", str(root / "utt2spk"),
                    str(root / "trials")], env=env_for_tests(), check=True, capture_output=True)
    return root


def validated_config(exp, tiny_data, dev_set, **overrides):
    config = tiny_config(exp, tiny_data / "raw.list", tiny_data / "utt2spk", **overrides)
    config.update(dev_data=str(dev_set), dev_trials=str(dev_set / "trials"))
    return config


@pytest.fixture(scope="module")
def validated_run(tiny_data, dev_set, tmp_path_factory):
    """2 gloo processes, 2 epochs, the dev EER after each."""
    exp = tmp_path_factory.mktemp("val") / "exp"
    config = validated_config(exp, tiny_data, dev_set, num_epochs=2)
    proc = run_train(write_config(exp.parent / "c.yaml", config), nproc=2)
    return exp, proc


def test_every_epoch_is_validated_and_plotted(validated_run):
    exp, _ = validated_run
    records = read_validation_records(str(exp / "validation.jsonl"))
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(0.0 <= r["eer"] <= 1.0 and 0.0 <= r["min_dcf_0.01"] <= 1.0 for r in records)
    log = (exp / "train.log").read_text()
    assert "epoch 1: dev EER" in log and "epoch 2: dev EER" in log
    assert (exp / "train_curves.png").stat().st_size > 0


def test_recorded_eer_is_the_scoring_stages_eer(validated_run, dev_set, tmp_path):
    """The epoch-2 EER equals what extract + score (dev mean subtracted) + compute_metrics give."""
    exp, _ = validated_run
    env = env_for_tests()
    emb = tmp_path / "emb"
    for cmd in (["wespk.bin.extract", "--model_dir", str(exp), "--checkpoint", str(exp / "models" / "model_2.pt"),
                 "--data", str(dev_set), "--out_dir", str(emb)],
                ["wespk.bin.score", "--embeddings", str(emb / "xvector.scp"), "--mean_from",
                 str(emb / "xvector.scp"), "--trials", str(dev_set / "trials"), "--output", str(tmp_path / "s"),
                 "--decimals", "9"],
                ["wespk.bin.compute_metrics", "--p_target", "0.01", "--json", str(tmp_path / "m.json"),
                 str(tmp_path / "s")]):
        subprocess.run([sys.executable, "-m", *cmd], env=env, check=True, capture_output=True)
    reference = json.loads((tmp_path / "m.json").read_text())[0]
    recorded = read_validation_records(str(exp / "validation.jsonl"))[-1]
    # the score file holds 9 decimals: the same ranking, hence the same EER, up to ties
    assert recorded["eer"] == pytest.approx(reference["eer"], abs=1e-9)


def test_validation_does_not_change_the_training(tiny_data, dev_set, tmp_path):
    """Same seed with and without dev_trials: the same weights, bit for bit (validation
    builds a model, and the RNG state is restored after it)."""
    states = []
    for name, validate in (("plain", False), ("validated", True)):
        exp = tmp_path / name
        config = (validated_config(exp, tiny_data, dev_set, num_epochs=2) if validate
                  else tiny_config(exp, tiny_data / "raw.list", tiny_data / "utt2spk", num_epochs=2))
        run_train(write_config(tmp_path / f"{name}.yaml", config))
        states.append(torch.load(exp / "models" / "model_2.pt", weights_only=True)["model"])
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_a_rerun_after_early_stopping_trains_no_more(tiny_data, dev_set, tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    # records saying that epoch 1 was the best and 2 epochs have not improved on it
    (exp / "validation.jsonl").write_text("".join(json.dumps({"epoch": e, "eer": v}) + "\n"
                                                  for e, v in ((1, 0.1), (2, 0.2), (3, 0.15))))
    config = validated_config(exp, tiny_data, dev_set, num_epochs=4, early_stop_patience=2)
    proc = run_train(write_config(tmp_path / "c.yaml", config))
    assert "training stopped early before" in proc.stderr + (exp / "train.log").read_text()
    assert not list((exp / "models").glob("model_*.pt"))


def test_dev_trials_without_dev_data_is_an_error(tiny_data, tmp_path):
    config = tiny_config(tmp_path / "exp", tiny_data / "raw.list", tiny_data / "utt2spk")
    config["dev_trials"] = str(tmp_path / "trials")
    proc = subprocess.run([sys.executable, "-m", "wespk.bin.train", "--config",
                           str(write_config(tmp_path / "c.yaml", config))],
                          env=env_for_tests(), capture_output=True, text=True)
    assert proc.returncode == 2 and "dev_trials needs dev_data" in proc.stderr


def records(*eers):
    return [{"epoch": i + 1, "eer": e} for i, e in enumerate(eers)]


def test_best_window_and_patience():
    assert best_epoch_window(records(0.3, 0.2, 0.1, 0.2), 1) == (3, 3)
    assert best_epoch_window(records(0.3, 0.2, 0.1, 0.2), 2) == (3, 4)   # latest of equal means
    assert best_epoch_window(records(0.3, 0.1, 0.1, 0.4), 3) == (1, 3)
    assert best_epoch_window(records(0.3, 0.2), 5) == (1, 2)
    assert epochs_without_improvement(records(0.3, 0.1, 0.2, 0.1)) == 2   # a tie is no improvement
    assert epochs_without_improvement(records(0.3, 0.1)) == 0
    with pytest.raises(ValueError):
        best_epoch_window([], 2)


def test_hook_records_restore_rng_and_stop(tmp_path):
    eers = iter([0.3, 0.2, 0.25, 0.26])

    def evaluate(epoch, checkpoint):
        torch.rand(100)   # as building a model does
        return {"eer": next(eers)}

    hook = EpochValidation(str(tmp_path), evaluate, patience=2)
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    assert hook.after_epoch(1, "model_1.pt") is False
    assert torch.equal(torch.rand(1), expected)
    assert hook.after_epoch(2, "model_2.pt") is False
    assert hook.after_epoch(3, "model_3.pt") is False
    assert hook.after_epoch(4, "model_4.pt") is True       # 2 epochs since the best (epoch 2)
    assert hook.stopped_early()
    assert hook.curve() == [(1, 30.0), (2, 20.0), (3, 25.0), (4, 26.0)]
    # a resumed run validating epoch 3 again drops the records after it
    hook.evaluate = lambda epoch, checkpoint: {"eer": 0.1}
    hook.after_epoch(3, "model_3.pt")
    assert [(r["epoch"], r["eer"]) for r in hook.records()] == [(1, 0.3), (2, 0.2), (3, 0.1)]
    assert not hook.stopped_early()
