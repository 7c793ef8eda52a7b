"""train_enhancer under real torchrun (gloo, 2 processes): a killed run resumed equals an uninterrupted one."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import CORPUS, REPO
from tests.enhance.helpers import make_model_dir
from wespk.enhance.enhancer import Enhancer
from wespk.enhance.training import resolve_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from wespk.augment.noise_sets import build_noise_set, build_rir_set
    root = tmp_path_factory.mktemp("enh_train")
    make_model_dir(root / "backbone")
    build_noise_set(str(root / "aug" / "noise"), num_coloured=2, num_babble=0, duration=3.0, seed=1)
    build_rir_set(str(root / "aug" / "rirs"), num_rirs=2, seed=2)
    files = sorted(CORPUS.glob("train/*/*.flac"))[:16]
    (root / "audio.list").write_text("".join(f"{p}\n" for p in files))
    return root


def write_config(root: Path, exp: str) -> Path:
    config = {"backbone": str(root / "backbone"), "train_data": str(root / "audio.list"),
              "noise_data": str(root / "aug" / "noise"), "reverb_data": str(root / "aug" / "rirs"),
              "exp_dir": str(root / exp), "num_epochs": 2, "batch_size": 2, "chunk_seconds": 1.0,
              "degradations": ["clean", "noise", "reverb"], "network": {"num_layers": 1},
              "save_interval_steps": 1, "log_interval_steps": 1}
    path = root / f"{exp}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def torchrun(config: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "wespk.bin.train_enhancer", "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def child_pids(pid: int):
    """Processes whose parent is ``pid`` (torchrun starts its workers in their own sessions)."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry))
    return children


def kill_run(proc: subprocess.Popen) -> None:
    """SIGKILL torchrun's workers, then torchrun itself."""
    for pid in child_pids(proc.pid):
        os.kill(pid, signal.SIGKILL)
    proc.kill()
    proc.wait()


def test_killed_run_resumes_exactly(setup):
    root = setup
    reference = torchrun(write_config(root, "reference"))
    killed = torchrun(write_config(root, "killed"))
    models = root / "killed" / "models"
    deadline = time.time() + 240
    while not list(models.glob("model_1_*.pt")) and killed.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    kill_run(killed)
    time.sleep(1)
    assert not (root / "killed" / "enhancer.pt").exists(), "the run finished before it could be killed"
    _, err = reference.communicate(timeout=240)
    assert reference.returncode == 0, err
    resumed = torchrun(write_config(root, "killed"))
    _, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    log = (root / "killed" / "train.log").read_text()
    point = re.search(r"resuming from \S+model_(\d+)_(\d+)\.pt", log)
    assert point, "the second run did not resume from a mid-epoch checkpoint"
    want = torch.load(root / "reference" / "enhancer.pt", weights_only=True)["model"]
    got = torch.load(root / "killed" / "enhancer.pt", weights_only=True)["model"]
    assert want.keys() == got.keys()
    diff = max(float((want[k] - got[k]).abs().max()) for k in want)
    assert diff <= 1e-6
    assert any(float(want[k].abs().max()) > 0 for k in want if k.startswith("out.2"))   # it did train
    # the training state is readable weights-only, and the exp dir is an enhancer dir
    assert torch.load(root / "killed" / "models" / "model_2.pt", weights_only=True)["global_step"] == 16
    assert Enhancer.load(str(root / "killed")).backbone.name == "ResNet34"
    assert (root / "killed" / "loss_curve.png").stat().st_size > 0
    steps = [line for line in (root / "killed" / "train_metrics.jsonl").read_text().splitlines()]
    assert len(steps) == 16


def test_config_errors(setup):
    with pytest.raises(ValueError, match=r"c\.yaml: unknown config key\(s\) batchsize"):
        resolve_config({"backbone": "b", "train_data": "t", "exp_dir": "e", "batchsize": 3}, "c.yaml")
    with pytest.raises(ValueError, match="degradation 'music' needs noise_data"):
        resolve_config({"backbone": "b", "train_data": "t", "exp_dir": "e", "reverb_data": "r"}, "c.yaml")
    with pytest.raises(ValueError, match="c.yaml: missing train_data"):
        resolve_config({"backbone": "b", "exp_dir": "e"}, "c.yaml")
