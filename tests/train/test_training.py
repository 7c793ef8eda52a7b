"""Real training runs: torchrun with gloo on CPU, exact resume after SIGKILL, LM start."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import CORPUS, REPO
from wespk.io.checkpoint import load_checkpoint

NUM_SPEAKERS = 8


def tiny_config(exp_dir: Path, data_list: Path, utt2spk: Path, **overrides) -> dict:
    config = {
        "exp_dir": str(exp_dir), "seed": 7, "num_epochs": 10, "num_avg": 2,
        "log_batch_interval": 1, "save_epoch_interval": 1, "precision": "fp32",
        "data_type": "raw", "train_data": str(data_list), "train_label": str(utt2spk),
        "dataloader_args": {"batch_size": 4, "num_workers": 0},
        "dataset_args": {
            "shuffle": True, "shuffle_args": {"shuffle_size": 16},
            "resample_rate": 16000, "speed_perturb": False, "num_frms": 80, "aug_prob": 0.0,
            "fbank_args": {"num_mel_bins": 40, "frame_shift": 10, "frame_length": 25, "dither": 1.0},
        },
        "model": "ResNet18",
        "model_args": {"feat_dim": 40, "embed_dim": 32, "m_channels": 4, "pooling_func": "TSTP",
                       "two_emb_layer": False},
        "projection_args": {"project_type": "arc_margin", "scale": 16.0, "easy_margin": False},
        "margin_scheduler": "MarginScheduler",
        "margin_update": {"initial_margin": 0.0, "final_margin": 0.1, "increase_start_epoch": 2,
                          "fix_start_epoch": 3, "update_margin": True, "increase_type": "exp"},
        "loss": "CrossEntropyLoss",
        "optimizer": "SGD", "optimizer_args": {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
        "scheduler": "ExponentialDecrease",
        "scheduler_args": {"initial_lr": 0.8, "final_lr": 0.1, "warm_up_epoch": 1, "warm_from_zero": False},
    }
    for key, value in overrides.items():
        node = config
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return config


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """A raw list of real utterances from 8 training speakers of the bundled corpus."""
    root = tmp_path_factory.mktemp("tiny_data")
    lines, utt2spk = [], []
    for spk_dir in sorted((CORPUS / "train").iterdir())[:NUM_SPEAKERS]:
        for path in sorted(spk_dir.glob("*.flac"))[:3]:
            lines.append(json.dumps({"key": path.stem, "wav": str(path), "spk": spk_dir.name}))
            utt2spk.append(f"{path.stem} {spk_dir.name}")
    (root / "raw.list").write_text("\n".join(lines) + "\n")
    (root / "utt2spk").write_text("\n".join(sorted(utt2spk)) + "\n")
    return root


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def env_for_tests():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_train(config_path: Path, nproc: int = 0, extra=(), timeout=600):
    if nproc:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
               f"--nproc_per_node={nproc}", "-m", "wespk.bin.train"]
    else:
        cmd = [sys.executable, "-m", "wespk.bin.train"]
    cmd += ["--config", str(config_path), "--device", "cpu", *extra]
    proc = subprocess.run(cmd, env=env_for_tests(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def read_metrics(exp_dir: Path):
    return [json.loads(line) for line in (exp_dir / "train_metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def ddp_run(tiny_data, tmp_path_factory):
    """2 gloo processes x batch 4 (global batch 8)."""
    exp = tmp_path_factory.mktemp("ddp") / "exp"
    config = tiny_config(exp, tiny_data / "raw.list", tiny_data / "utt2spk", save_batch_keys=True)
    run_train(write_config(exp.parent / "c.yaml", config), nproc=2)
    return exp


def test_ddp_two_processes_loss_falls_and_ranks_disjoint(ddp_run, tiny_data):
    metrics = read_metrics(ddp_run)
    first = sum(m["loss"] for m in metrics[:3]) / 3
    last = sum(m["loss"] for m in metrics[-3:]) / 3
    assert last < 0.8 * first, (first, last)
    # the two ranks saw disjoint utterances within each pass over the list
    keys = {}
    for rank in (0, 1):
        for line in (ddp_run / "batch_keys" / f"rank{rank}.txt").read_text().splitlines():
            epoch, _, *batch = line.split()
            keys.setdefault((rank, int(epoch)), []).extend(batch)
    n_utts = len((tiny_data / "utt2spk").read_text().splitlines())
    for epoch in range(1, 11):
        rank0, rank1 = keys[(0, epoch)], keys[(1, epoch)]
        assert len(rank0) == len(rank1) == (n_utts // 8) * 4
        assert not set(rank0) & set(rank1)
    # the resolved config and the curves are in the exp dir
    saved = yaml.safe_load((ddp_run / "config.yaml").read_text())
    assert saved["num_class"] == NUM_SPEAKERS
    assert (ddp_run / "train_curves.png").stat().st_size > 1000
    assert "global batch 8" in (ddp_run / "train.log").read_text()


def test_same_schedule_with_half_batch_on_two_processes(ddp_run, tiny_data, tmp_path):
    exp = tmp_path / "exp"
    config = tiny_config(exp, tiny_data / "raw.list", tiny_data / "utt2spk",
                         **{"dataloader_args.batch_size": 8})
    run_train(write_config(tmp_path / "c.yaml", config))
    one = [(m["global_step"], m["lr"], m["margin"]) for m in read_metrics(exp)]
    two = [(m["global_step"], m["lr"], m["margin"]) for m in read_metrics(ddp_run)]
    assert one == two
    assert len(one) == 10 * (len((tiny_data / "utt2spk").read_text().splitlines()) // 8)


def _max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0 for k in a)


def test_sigkill_mid_epoch_then_resume_is_exact(tiny_data, tmp_path):
    overrides = {"num_epochs": 2, "save_interval": 2, "dataloader_args.num_workers": 2,
                 "dataset_args.aug_prob": 0.5}
    ref_exp = tmp_path / "ref"
    run_train(write_config(tmp_path / "ref.yaml",
                           tiny_config(ref_exp, tiny_data / "raw.list", tiny_data / "utt2spk", **overrides)))

    exp = tmp_path / "killed"
    config_path = write_config(tmp_path / "killed.yaml",
                               tiny_config(exp, tiny_data / "raw.list", tiny_data / "utt2spk", **overrides))
    proc = subprocess.Popen([sys.executable, "-m", "wespk.bin.train", "--config", str(config_path),
                             "--device", "cpu"], env=env_for_tests(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = exp / "models" / "model_2_2.pt"   # mid-way through epoch 2
    deadline = time.time() + 300
    while not target.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert target.exists(), "the run never reached its mid-epoch checkpoint"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (exp / "models" / "model_2.pt").exists(), "killed too late to test a mid-epoch resume"

    out = run_train(config_path)
    assert "resumed from" in out.stderr and "model_2_2.pt" in out.stderr
    ref = load_checkpoint(ref_exp / "models" / "model_2.pt")["model"]
    resumed = load_checkpoint(exp / "models" / "model_2.pt")["model"]
    assert _max_abs_diff(ref, resumed) <= 1e-6
    # mid-epoch checkpoints of finished epochs are pruned
    assert sorted(p.name for p in (exp / "models").glob("model_*.pt")) == ["model_1.pt", "model_2.pt"]


def test_large_margin_start_keeps_unperturbed_classes(tiny_data, tmp_path):
    from wespk.bin.average_model import main as average_main
    from wespk.train.distributed import DistInfo
    from wespk.train.trainer import Trainer

    exp = tmp_path / "sp"
    run_train(write_config(tmp_path / "sp.yaml", tiny_config(
        exp, tiny_data / "raw.list", tiny_data / "utt2spk",
        **{"num_epochs": 2, "dataset_args.speed_perturb": True})))
    assert yaml.safe_load((exp / "config.yaml").read_text())["num_class"] == 3 * NUM_SPEAKERS
    avg = exp / "models" / "avg_model.pt"
    assert average_main(["--src_path", str(exp / "models"), "--dst_model", str(avg), "--num", "2"]) == 0
    config = tiny_config(tmp_path / "lm", tiny_data / "raw.list", tiny_data / "utt2spk",
                         model_init=str(avg), **{"dataset_args.speed_perturb": False,
                                                 "dataset_args.num_frms": 120})
    trainer = Trainer(config, DistInfo(0, 1, 0, torch.device("cpu"), None))
    assert trainer.dataset.num_classes == NUM_SPEAKERS
    averaged = torch.load(avg)
    head = trainer.model.projection.weight.detach()
    assert head.shape[0] == NUM_SPEAKERS
    torch.testing.assert_close(head, averaged["projection.weight"][:NUM_SPEAKERS])
    torch.testing.assert_close(trainer.model.seg_1.weight.detach(), averaged["seg_1.weight"])


def test_bad_config_key_is_an_error(tiny_data, tmp_path):
    config = tiny_config(tmp_path / "exp", tiny_data / "raw.list", tiny_data / "utt2spk")
    path = write_config(tmp_path / "c.yaml", config)
    proc = subprocess.run([sys.executable, "-m", "wespk.bin.train", "--config", str(path),
                           "--dataset_args.num_frm", "100"], env=env_for_tests(), capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown dataset_args key(s) ['num_frm']" in proc.stderr


def test_ge2e_training_balanced_batches(tiny_data, tmp_path):
    exp = tmp_path / "ge2e"
    config = tiny_config(exp, tiny_data / "raw.list", tiny_data / "utt2spk",
                         **{"num_epochs": 8, "save_batch_keys": True,
                            "dataset_args.num_frms": 60,
                            "scheduler_args.initial_lr": 0.05, "scheduler_args.final_lr": 0.01})
    config.update(model="GE2E_LSTM", loss="GE2E", loss_args={"init_w": 10.0, "init_b": -5.0},
                  model_args={"feat_dim": 40, "hidden_dim": 32, "embed_dim": 16, "num_layers": 2,
                              "partial_frames": 60},
                  dataloader_args={"num_spks": 4, "num_utts_per_spk": 2, "num_workers": 0},
                  clip_grad=3.0)
    del config["margin_scheduler"], config["margin_update"], config["projection_args"]
    run_train(write_config(tmp_path / "c.yaml", config))
    # every batch holds 4 speakers x 2 utterances, speaker-major
    utt2spk = dict(line.split() for line in (tiny_data / "utt2spk").read_text().splitlines())
    for line in (exp / "batch_keys" / "rank0.txt").read_text().splitlines():
        keys = line.split()[2:]
        speakers = [utt2spk[k] for k in keys]
        assert len(keys) == 8 and len(set(speakers)) == 4
        assert all(speakers[2 * i] == speakers[2 * i + 1] for i in range(4))
    metrics = read_metrics(exp)
    assert len(metrics) == 8 * (len(utt2spk) // 8)
    first = sum(m["loss"] for m in metrics[:4]) / 4
    last = sum(m["loss"] for m in metrics[-4:]) / 4
    assert last < first, (first, last)
    state = load_checkpoint(exp / "models" / "model_8.pt")["model"]
    assert float(state["projection.w"]) != 10.0 and "lstm.weight_ih_l0" in state


def test_bf16_autocast_and_nan_guard(tiny_data, tmp_path):
    # bf16 autocast on CPU trains (head and loss stay in fp32)
    exp = tmp_path / "bf16"
    run_train(write_config(tmp_path / "bf16.yaml", tiny_config(
        exp, tiny_data / "raw.list", tiny_data / "utt2spk", num_epochs=1)), extra=["--precision", "bf16"])
    metrics = read_metrics(exp)
    assert metrics and all(0 < m["loss"] < 100 for m in metrics)
    assert "precision bf16" in (exp / "train.log").read_text()
    # an absurd learning rate blows the weights up: non-finite steps are skipped and reported
    exp = tmp_path / "nan"
    out = run_train(write_config(tmp_path / "nan.yaml", tiny_config(
        exp, tiny_data / "raw.list", tiny_data / "utt2spk",
        **{"num_epochs": 2, "scheduler_args.initial_lr": 1e30, "scheduler_args.final_lr": 1e30})))
    assert "non-finite loss or gradient, step skipped" in out.stderr
    assert (exp / "models" / "model_2.pt").exists()
