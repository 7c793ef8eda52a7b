"""examples/voxceleb/v3 end to end on a few speakers of corpus/mini with a tiny random-init WavLM:
frozen -> joint -> large-margin phases, then extraction, scoring and export."""

import os
import shutil
import subprocess
from pathlib import Path

import kaldiio
import pytest
import torch

from tests.conftest import CORPUS, REPO
from tests.frontends.conftest import tiny_config

RECIPE = REPO / "examples" / "voxceleb" / "v3"
CONF = Path(__file__).with_name("conf")
TRAIN_SPEAKERS, TEST_SPEAKERS = 4, 4
EVAL_STAGES = "5 6 7 9 10"   # extract, score, AS-norm, metrics, export (QMF needs a trained model)


def make_recipe(root: Path) -> Path:
    """A private copy of v3 next to a link to v2 (whose stages it runs), linked to this repo."""
    recipe = root / "voxceleb" / "v3"
    recipe.mkdir(parents=True)
    os.symlink(REPO / "examples" / "voxceleb" / "v2", root / "voxceleb" / "v2")
    for name in ("run.sh", "path.sh"):
        shutil.copy(RECIPE / name, recipe / name)
    (recipe / "conf").mkdir()
    for config in CONF.glob("tiny_*.yaml"):
        shutil.copy(config, recipe / "conf" / config.name)
    for name, target in (("tools", REPO / "tools"), ("wespk", REPO / "wespk"),
                         ("local", REPO / "examples" / "voxceleb" / "v2" / "local")):
        os.symlink(target, recipe / name)
    return recipe


def make_data(recipe: Path) -> None:
    """data/vox2_dev (training, with its raw list), data/vox1 (test) and data/trials/mini from
    corpus/mini: what stage 1 makes from VoxCeleb."""
    from wespk.bin import make_calibration_trials, make_trials
    from wespk.data.importers import prepare_data_dir
    corpus = recipe / "corpus"
    for split, count in (("train", TRAIN_SPEAKERS), ("test", TEST_SPEAKERS)):
        for spk_dir in sorted((CORPUS / split).iterdir())[:count]:
            (corpus / split).mkdir(parents=True, exist_ok=True)
            os.symlink(spk_dir, corpus / split / spk_dir.name)
    data = recipe / "data"
    prepare_data_dir("folder", str(corpus / "train"), str(data / "vox2_dev"), num_threads=1)
    prepare_data_dir("folder", str(corpus / "test"), str(data / "vox1"), num_threads=1)
    subprocess.run([str(REPO / ".venv" / "bin" / "python"), str(REPO / "tools" / "make_raw_list.py"),
                    str(data / "vox2_dev"), str(data / "vox2_dev" / "raw.list")], check=True, capture_output=True)
    (data / "trials").mkdir()
    assert make_trials.main(["--seed", "777", str(data / "vox1" / "utt2spk"), str(data / "trials" / "mini")]) == 0
    assert make_calibration_trials.main([
        "--seed", "777", "--utt2spk", str(data / "vox2_dev" / "utt2spk"), "--utt2dur",
        str(data / "vox2_dev" / "utt2dur"), "--short_max", "4", "--long_min", "4", "--rounds", "20",
        "--output", str(data / "vox2_dev" / "cali_trials")]) == 0


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    from wespk.frontends.ssl_frontend import SSLFrontend
    recipe = make_recipe(tmp_path_factory.mktemp("ssl"))
    make_data(recipe)
    torch.manual_seed(0)
    pretrained = SSLFrontend("wavlm", config=tiny_config(stable_layer_norm=True)).model
    pretrained.save_pretrained(recipe / "pretrained" / "tiny_wavlm")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        ["bash", "run.sh", "--stage", "2", "--stop_stage", "6", "--setup", "tiny", "--exp_dir", "exp/tiny",
         "--data_type", "raw", "--aug_sets", "", "--nproc", "1", "--nj", "1", "--trials", "mini",
         "--top_n", "8", "--eval_stages", EVAL_STAGES],
        cwd=recipe, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return recipe, proc, {k: v.clone() for k, v in pretrained.state_dict().items()}


def state(path: Path):
    from wespk.io.checkpoint import find_state_dict, load_checkpoint
    return find_state_dict(load_checkpoint(str(path)), str(path))[0]


def test_frozen_phase_leaves_the_frontend_bit_identical(recipe_run):
    recipe, _, pretrained = recipe_run
    trained = state(recipe / "exp" / "tiny-frozen" / "models" / "model_1.pt")
    frontend = {k[len("frontend.model."):]: v for k, v in trained.items() if k.startswith("frontend.model.")}
    assert set(frontend) == set(pretrained)
    assert all(torch.equal(frontend[k], pretrained[k]) for k in pretrained)
    initial = torch.ones_like(trained["back_end.weights_k"])  # MHFA's layer weights start at ones
    assert not torch.equal(trained["back_end.weights_k"], initial)


def test_joint_phase_changes_the_frontend_and_lmft_has_one_class_per_speaker(recipe_run):
    recipe, proc, _ = recipe_run
    frozen = state(recipe / "exp" / "tiny-frozen" / "models" / "avg_model.pt")
    joint = state(recipe / "exp" / "tiny-joint" / "models" / "model_1.pt")
    changed = [k for k in joint if k.startswith("frontend.") and not torch.equal(joint[k], frozen[k])]
    assert len(changed) > 20
    assert "initialised encoder and head from exp/tiny-frozen/models/avg_model.pt" in proc.stdout + proc.stderr
    lmft = state(recipe / "exp" / "tiny-lmft" / "models" / "model_1.pt")
    # speed perturbation off: 4 classes, where the earlier phases had 3 x 4
    assert joint["projection.weight"].shape[0] == 3 * TRAIN_SPEAKERS
    assert lmft["projection.weight"].shape[0] == TRAIN_SPEAKERS


def test_evaluation_stages_extract_score_and_export(recipe_run, monkeypatch):
    recipe, _, _ = recipe_run
    monkeypatch.chdir(recipe)   # scp files name their arks relative to the recipe dir
    exp = recipe / "exp" / "tiny-lmft"
    test_utts = (recipe / "data" / "vox1" / "utt2spk").read_text().splitlines()
    vectors = kaldiio.load_scp(str(exp / "embeddings" / "vox1" / "xvector.scp"))
    assert len(vectors) == len(test_utts) and next(iter(vectors.values())).shape == (32,)
    trials = (recipe / "data" / "trials" / "mini").read_text().splitlines()
    for name in ("mini.score", "mini.asnorm8.score"):
        assert len((exp / "scores" / name).read_text().splitlines()) == len(trials)
    assert "EER" in (exp / "results.md").read_text()
    for name in ("final.onnx", "final.pt"):
        assert (exp / "models" / name).stat().st_size > 0
