"""A crafted checkpoint given to every program that reads one: nothing runs, one line names the file.

The crafted file's ``__reduce__`` calls ``exec`` to write a marker file. Each
program is run as a subprocess (all of them at once, to keep the wall time
short); each must exit non-zero with exactly one line of stderr that names
the file and the global it refused, no traceback, and no marker, with
``--trust_checkpoint`` as without it.
``test_checkpoint.py::test_crafted_file_runs_code_when_fully_unpickled_but_never_in_wespk``
shows that the crafted file does run code when fully unpickled, so the absence
of the marker means something.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import CORPUS, REPO
from tests.io.test_checkpoint import write_crafted

SMALL_XVEC = {"model": "XVEC", "model_args": {"feat_dim": 40, "hid_dim": 16, "stats_dim": 24, "embed_dim": 8},
              "dataset_args": {"resample_rate": 16000, "cmn": True,
                               "fbank_args": {"num_mel_bins": 40, "frame_length": 25, "frame_shift": 10}}}


def bundled_audio(count: int):
    files = []
    for spk_dir in sorted(p for p in (CORPUS / "train").iterdir() if p.is_dir())[:count]:
        files.append((spk_dir.name, sorted(spk_dir.glob("*.flac"))[0]))
    return files


def train_config(root: Path, **extra) -> Path:
    audio = bundled_audio(2)
    (root / "raw.list").write_text("".join(json.dumps({"key": p.stem, "wav": str(p), "spk": spk}) + "\n"
                                           for spk, p in audio))
    (root / "utt2spk").write_text("".join(f"{p.stem} {spk}\n" for spk, p in sorted(audio, key=lambda a: a[1].stem)))
    config = dict(SMALL_XVEC, exp_dir=str(root / "exp"), data_type="raw", train_data=str(root / "raw.list"),
                  train_label=str(root / "utt2spk"), num_epochs=1, precision="fp32",
                  dataloader_args={"batch_size": 2, "num_workers": 0},
                  dataset_args=dict(SMALL_XVEC["dataset_args"], num_frms=50, speed_perturb=False, aug_prob=0.0),
                  projection_args={"project_type": "softmax"}, scheduler="ExponentialDecrease",
                  scheduler_args={"initial_lr": 0.1, "final_lr": 0.01}, **extra)
    path = root / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def model_dir_with(root: Path, crafted_marker: Path) -> Path:
    root.mkdir(parents=True)
    (root / "config.yaml").write_text(yaml.safe_dump(SMALL_XVEC))
    write_crafted(root / "avg_model.pt", crafted_marker)
    return root


def cases(base: Path):
    """name -> (command, crafted file the message must name, marker the file would write)."""
    audio = bundled_audio(1)[0][1]
    out = {}

    def case(name, make_command):
        work = base / name
        work.mkdir(parents=True)
        marker = work / "marker"
        out[name] = (*make_command(work, marker), marker)

    def embed(work, marker):
        model = model_dir_with(work / "model", marker)
        return [sys.executable, "-m", "wespk.cli", "embed", "--model", model, audio], model / "avg_model.pt"

    def extract(work, marker):
        model = model_dir_with(work / "model", marker)
        (work / "wav.scp").write_text(f"{audio.stem} {audio}\n")
        return ([sys.executable, "-m", "wespk.bin.extract", "--model_dir", model, "--data", work / "wav.scp",
                 "--out_dir", work / "emb"], model / "avg_model.pt")

    def extract_two_jobs(work, marker):
        model = model_dir_with(work / "model", marker)
        (work / "wav.scp").write_text(f"a-{audio.stem} {audio}\nb-{audio.stem} {audio}\n")
        return ([sys.executable, "-m", "wespk.bin.extract", "--model_dir", model, "--data", work / "wav.scp",
                 "--out_dir", work / "emb", "--nj", "2", "--batch_size", "1"], model / "avg_model.pt")

    def export(module, suffix):
        def make(work, marker):
            model = model_dir_with(work / "model", marker)
            return ([sys.executable, "-m", f"wespk.bin.{module}", "--model_dir", model,
                     "--output", work / f"final.{suffix}"], model / "avg_model.pt")
        return make

    def average(work, marker):
        (work / "models").mkdir()
        crafted = write_crafted(work / "models" / "model_1.pt", marker)
        return ([sys.executable, "-m", "wespk.bin.average_model", "--src_path", work / "models",
                 "--dst_model", work / "avg.pt", "--num", "1"], crafted)

    def analyze(work, marker):
        crafted = write_crafted(work / "x.pt", marker)
        return [sys.executable, "-m", "wespk.bin.checkpoint_tool", "analyze", crafted], crafted

    def model_init(work, marker):
        crafted = write_crafted(work / "pretrained.pt", marker)
        return [sys.executable, "-m", "wespk.bin.train", "--config", train_config(work, model_init=str(crafted)),
                "--device", "cpu"], crafted

    def resume(work, marker):
        crafted = write_crafted(work / "model_3.pt", marker)
        return [sys.executable, "-m", "wespk.bin.train", "--config", train_config(work), "--device", "cpu",
                "--checkpoint", crafted], crafted

    def trusted(make_command, flag):
        def make(work, marker):
            command, crafted = make_command(work, marker)
            return command + [flag], crafted
        return make

    case("wespk_embed", embed)
    case("wespk_embed_trusted", trusted(embed, "--trust-checkpoint"))
    case("extract_trusted", trusted(extract, "--trust_checkpoint"))
    case("extract", extract)
    case("extract_two_jobs", extract_two_jobs)
    case("export_onnx", export("export_onnx", "onnx"))
    case("export_jit", export("export_jit", "pt"))
    case("average_model", average)
    case("checkpoint_tool_analyze", analyze)
    case("train_model_init", model_init)
    case("train_resume", resume)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every case run at once; name -> (CompletedProcess-like (returncode, stderr), crafted, marker)."""
    base = tmp_path_factory.mktemp("crafted")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("WESPK_MODEL", None)
    procs = {name: (subprocess.Popen([str(c) for c in command], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, cwd=base), crafted, marker)
             for name, (command, crafted, marker) in cases(base).items()}
    results = {}
    for name, (proc, crafted, marker) in procs.items():
        _, err = proc.communicate(timeout=300)
        results[name] = (proc.returncode, err, crafted, marker)
    return results


@pytest.mark.parametrize("name", ["wespk_embed", "wespk_embed_trusted", "extract", "extract_trusted", "extract_two_jobs", "export_onnx", "export_jit", "average_model",
                                  "checkpoint_tool_analyze", "train_model_init", "train_resume"])
def test_crafted_checkpoint_is_refused(runs, name):
    returncode, err, crafted, marker = runs[name]
    assert returncode != 0, err
    assert "Traceback" not in err, err
    refusals = [line for line in err.splitlines() if "refusing to unpickle" in line]
    assert len(refusals) == 1, err
    assert refusals[0].endswith(f"{crafted}: refusing to unpickle a global 'builtins.exec' (this file could run "
                                f"code); wespk never runs code from a checkpoint: if the file is yours, save "
                                f"its state_dict (tensors only) with torch.save and give that file instead"), \
        refusals[0]
    assert not marker.exists(), f"{name}: the crafted checkpoint ran code"
    if name.startswith("export"):
        assert not list(crafted.parent.parent.glob("final.*")), "an export was written"


def test_api_load_model_refuses(tmp_path):
    import wespk
    from wespk.io.checkpoint import UnsafeCheckpointError
    marker = tmp_path / "marker"
    model = model_dir_with(tmp_path / "model", marker)
    with pytest.raises(UnsafeCheckpointError) as info:
        wespk.load_model(str(model))
    assert str(info.value).startswith(f"{model / 'avg_model.pt'}: refusing to unpickle a global 'builtins.exec'")
    assert not marker.exists()
