"""Every recipe config loads in wespk and builds its model; every run.sh explains
itself and names the inputs a stage lacks."""

import pytest

from tests.conftest import REPO
from tests.recipes.helpers import copy_recipe, run
from wespk.bin.train import check_sections
from wespk.io.config import TRAIN_CONFIG_KEYS, load_config
from wespk.losses import get_projection
from wespk.losses.ge2e import GE2ELoss
from wespk.train.validation import VALIDATION_CONFIG_KEYS
from wespk.models import get_speaker_model

CONFIGS = sorted((REPO / "examples").glob("*/*/conf/*.yaml"))
CONFIGS = [c for c in CONFIGS if c.parts[-4] in ("voxceleb", "cnceleb", "custom")]

# WeSpeaker's published parameter counts (its voxceleb/v2 README), deployed RepVGG aside
PARAMS_M = {"ResNet34": 6.63, "ECAPA_TDNN_GLOB_c512": 6.19, "ECAPA_TDNN_GLOB_c1024": 14.65, "CAMPPlus": 7.18,
            "XVEC": 4.61}


def test_all_expected_configs_exist():
    names = {c.relative_to(REPO / "examples").as_posix() for c in CONFIGS}
    for model in ("resnet34", "ecapa_tdnn_glob_c512", "ecapa_tdnn_glob_c1024", "campplus", "repvgg_tiny_a0",
                  "xvec"):
        assert f"voxceleb/v2/conf/{model}.yaml" in names and f"voxceleb/v2/conf/{model}_lm.yaml" in names
    assert {"cnceleb/v2/conf/resnet34.yaml", "cnceleb/v2/conf/resnet34_lm.yaml",
            "custom/v1/conf/resnet34_small.yaml", "custom/v1/conf/resnet34_finetune.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: "/".join(p.parts[-4:]))
def test_config_loads_and_builds(path):
    config = load_config(str(path), allowed_top=TRAIN_CONFIG_KEYS | VALIDATION_CONFIG_KEYS)  # as wespk.bin.train
    check_sections(config)
    frontend_dir = (config["model_args"].get("frontend_args") or {}).get("model_dir")
    if frontend_dir and not (path.parent.parent / frontend_dir).is_dir():
        # an SSL recipe's pretrained frontend (made by its stage 2): built in tests/frontends
        pytest.skip(f"{path.name}: its frontend {frontend_dir} is made by the recipe's stage 2")
    model = get_speaker_model(config["model"])(**config["model_args"])
    if config.get("loss") == "GE2E":   # the GE2E loss is the head
        GE2ELoss(**(config.get("loss_args") or {}))
    else:
        get_projection(dict(config["projection_args"], embed_dim=config["model_args"]["embed_dim"], num_class=7))
    params = sum(p.numel() for p in model.parameters()) / 1e6
    if path.parts[-4] != "custom" and config["model"] in PARAMS_M:
        assert params == pytest.approx(PARAMS_M[config["model"]], abs=0.015)
    if path.stem.endswith("_lm"):
        # large-margin fine-tuning: one class per speaker, long chunks, a fixed large margin
        assert config["dataset_args"]["speed_perturb"] is False
        assert config["dataset_args"]["num_frms"] == 600
        assert config["margin_update"]["initial_margin"] == config["margin_update"]["final_margin"] == 0.5
        base = load_config(str(path.with_name(path.stem[:-3] + ".yaml")))
        assert base["model_args"] == config["model_args"] and base["model"] == config["model"]
        assert config["exp_dir"] == base["exp_dir"] + "-LM"


@pytest.mark.parametrize("recipe", ["voxceleb/v2", "cnceleb/v2", "custom/v1"])
def test_run_sh_help_and_missing_inputs(recipe, tmp_path):
    copy = copy_recipe(recipe, tmp_path / "r")
    help_text = run(["bash", "run.sh", "--help"], cwd=copy).stdout
    assert "Stages" in help_text and "10 export" in help_text
    proc = run(["bash", "run.sh", "--stage", "6", "--stop_stage", "6", "--exp_dir", "exp/x"], cwd=copy, check=False)
    assert proc.returncode != 0
    assert "stage 6 needs" in proc.stdout and "exp/x/embeddings/" in proc.stdout
    proc = run(["bash", "run.sh", "--no_such_option", "1"], cwd=copy, check=False)
    assert proc.returncode != 0 and "unknown option '--no_such_option'" in proc.stderr
