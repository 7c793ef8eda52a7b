"""The own-data recipe end to end on a folder tree made from the bundled corpus,
its CSV and JSON-lines layouts, the seeded speaker split, and fine-tuning."""

import importlib.util
import json
import os
import subprocess
import sys

import kaldiio
import pytest
import soundfile
import torch
import yaml

import wespk
from tests.conftest import CORPUS, REPO
from tests.recipes.helpers import copy_recipe, read_lines, run, validate

NUM_SPEAKERS = 8
UTTS_PER_SPEAKER = 3
DEV_SPEAKERS = 3
# the shipped small config, made shorter: one epoch, small batches, 1 s chunks
FAST = "--num_epochs 1 --num_avg 1 --dataloader_args.batch_size 4 --dataloader_args.num_workers 0 " \
       "--dataset_args.num_frms 100"


@pytest.fixture(scope="module")
def corpus_tree(tmp_path_factory):
    """``<root>/<speaker>/<utt>.flac`` links to the bundled corpus: 8 speakers x 3 utterances."""
    root = tmp_path_factory.mktemp("own_data") / "corpus"
    speakers = [d for d in sorted((CORPUS / "train").iterdir()) if len(list(d.glob("*.flac"))) >= UTTS_PER_SPEAKER]
    files = []
    for spk_dir in speakers[:NUM_SPEAKERS]:
        (root / spk_dir.name).mkdir(parents=True)
        for path in sorted(spk_dir.glob("*.flac"))[:UTTS_PER_SPEAKER]:
            os.symlink(path, root / spk_dir.name / path.name)
            files.append((spk_dir.name, path.stem, root / spk_dir.name / path.name))
    return root, files


@pytest.fixture(scope="module")
def trained(corpus_tree, tmp_path_factory):
    root, _ = corpus_tree
    recipe = copy_recipe("custom/v1", tmp_path_factory.mktemp("custom") / "v1")
    proc = run(["bash", "run.sh", "--source", str(root), "--dev_speakers", str(DEV_SPEAKERS),
                "--train_args", FAST, "--nj", "1", "--top_n", "4"], cwd=recipe, timeout=900)
    return recipe, proc


def test_split_and_dev_trials(trained, corpus_tree):
    recipe, _ = trained
    _, files = corpus_tree
    data = recipe / "data"
    for name in ("all", "train", "dev"):
        validate(data / name)
    train_spk = [line.split()[0] for line in read_lines(data / "train" / "spk2utt")]
    dev_spk = [line.split()[0] for line in read_lines(data / "dev" / "spk2utt")]
    assert len(dev_spk) == DEV_SPEAKERS and len(train_spk) == NUM_SPEAKERS - DEV_SPEAKERS
    assert sorted(train_spk + dev_spk) == sorted({spk for spk, _, _ in files})
    dev_utts = {line.split()[0] for line in read_lines(data / "dev" / "utt2spk")}
    trials = [line.split() for line in read_lines(data / "dev" / "trials")]
    assert trials and all(a in dev_utts and b in dev_utts for a, b, _ in trials)
    # every same-speaker pair of dev is a target trial
    assert sum(label == "target" for _, _, label in trials) == DEV_SPEAKERS * 3


def test_validation_eer_and_export(trained):
    recipe, proc = trained
    exp = recipe / "exp" / "resnet34_small"
    for rel in ("config.yaml", "models/model_1.pt", "models/avg_model.pt", "embeddings/dev/xvector.scp",
                "embeddings/train_spk/xvector.scp", "det.png", "models/final.onnx", "models/final.pt"):
        assert (exp / rel).exists(), rel
    trials = [line.split() for line in read_lines(recipe / "data" / "dev" / "trials")]
    for name in ("dev.score", "dev.asnorm4.score"):
        scores = [line.split() for line in read_lines(exp / "scores" / name)]
        assert [s[:2] for s in scores] == [t[:2] for t in trials], name
    report = (exp / "results.md").read_text()
    assert "dev.score" in report and "dev.asnorm4.score" in report
    assert proc.stdout.count("EER = ") == 3   # cosine without and with the mean subtracted, AS-norm
    # the shipped config, with the test's overrides on top
    config = yaml.safe_load((exp / "config.yaml").read_text())
    assert config["model_args"]["m_channels"] == 8 and config["num_epochs"] == 1
    assert config["dataset_args"]["noise_data"] == "data/aug/noise"
    # the dev EER of the epoch (validation.jsonl), the one stage 4 averaged
    records = [json.loads(line) for line in read_lines(exp / "validation.jsonl")]
    assert [r["epoch"] for r in records] == [1] and 0.0 <= records[0]["eer"] <= 1.0
    assert "epoch 1: dev EER" in (exp / "train.log").read_text()
    assert "averaging epochs 1-1 of exp/resnet34_small (the lowest mean dev EER" in proc.stdout


def test_model_dir_scored_before_and_after_finetuning(trained):
    """--model_init MODEL_DIR: the pretrained model's dev scores first (exp/pretrained_<dir>),
    one epoch of fine-tuning, both in the fine-tuned results.md on the same trials."""
    recipe, _ = trained
    proc = run(["bash", "run.sh", "--stage", "3", "--stop_stage", "9", "--exp_dir", "exp/ft",
                "--model_init", "exp/resnet34_small", "--train_args", FAST, "--nj", "1", "--top_n", "4"],
               cwd=recipe, timeout=900)
    pre = recipe / "exp" / "pretrained_resnet34_small"
    assert "the pretrained model exp/pretrained_resnet34_small on the dev trials" in proc.stdout
    # the pretrained model's dev scores are the trained recipe's own (same model, same back end)
    assert read_lines(pre / "scores" / "dev.score") == read_lines(recipe / "exp" / "resnet34_small" / "scores" / "dev.score")
    report = (recipe / "exp" / "ft" / "results.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == [
        "exp/pretrained_resnet34_small/scores/dev.nomean.score", "exp/pretrained_resnet34_small/scores/dev.score",
        "exp/pretrained_resnet34_small/scores/dev.asnorm4.score", "exp/ft/scores/dev.nomean.score",
        "exp/ft/scores/dev.score", "exp/ft/scores/dev.asnorm4.score"]
    assert "initialised the encoder" in (recipe / "exp" / "ft" / "train.log").read_text()


@pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                    reason="the resemblyzer package (its GE2E weights) is not installed")
def test_pretrained_ge2e_with_the_adapted_back_end(trained):
    """--pretrained ge2e by default: the converted encoder with this data's back end, no
    fine-tuning (none of the fine-tuning configs lowered the bundled corpus's dev EER)."""
    recipe, _ = trained
    proc = run(["bash", "run.sh", "--stage", "3", "--pretrained", "ge2e", "--nj", "1", "--top_n", "4"],
               cwd=recipe, timeout=900)
    exp = recipe / "exp" / "pretrained_ge2e"
    report = (exp / "results.md").read_text()
    assert "exp/pretrained_ge2e/scores/dev.score" in report and "dev.asnorm4.score" in report
    assert "no fine-tuning (--finetune false)" in proc.stdout
    assert not (exp / "models").exists()
    refused = run(["bash", "run.sh", "--stage", "3", "--pretrained", "ge2e", "--finetune", "true",
                   "--config", "conf/resnet34_small.yaml"], cwd=recipe, check=False)
    assert refused.returncode != 0
    assert "--pretrained ge2e fine-tunes the GE2E encoder, but conf/resnet34_small.yaml trains ResNet34" \
        in refused.stdout


# the GE2E fine-tuning config made small: two epochs of 2 speakers x 2 utterances a batch
GE2E_FAST = "--num_epochs 2 --early_stop_patience 0 --dataloader_args.num_spks 2 " \
            "--dataloader_args.num_utts_per_spk 2 --dataloader_args.num_workers 0"


@pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                    reason="the resemblyzer package (its GE2E weights) is not installed")
def test_ge2e_fine_tuned_best_epoch_kept_and_scored(trained, monkeypatch):
    """--pretrained ge2e --finetune true with the GE2E-loss config: the converted encoder
    trained on resemblyzer_mel features, validated every epoch, the best epoch kept, the
    kept model extracted and scored (stages 4-6; the side-by-side report of stage 9 is
    the one of test_model_dir_scored_before_and_after_finetuning)."""
    recipe, _ = trained
    proc = run(["bash", "run.sh", "--stage", "3", "--stop_stage", "6", "--pretrained", "ge2e", "--finetune", "true",
                "--config", "conf/ge2e_finetune_ge2e.yaml", "--exp_dir", "exp/ge2e_ft",
                "--train_args", GE2E_FAST, "--nj", "1"], cwd=recipe, timeout=900)
    exp = recipe / "exp" / "ge2e_ft"
    config = yaml.safe_load((exp / "config.yaml").read_text())
    assert config["model"] == "GE2E_LSTM" and config["loss"] == "GE2E"
    assert config["dataset_args"]["feature_type"] == "resemblyzer_mel"
    assert "initialised the encoder from exp/ge2e_ft/init_encoder.pt" in (exp / "train.log").read_text()
    # validated every epoch; stage 4 kept the best one (the earliest of equal dev EERs)
    records = [json.loads(line) for line in read_lines(exp / "validation.jsonl")]
    assert [r["epoch"] for r in records] == [1, 2]
    best = min(records, key=lambda r: (r["eer"], r["epoch"]))["epoch"]
    assert f"averaging epochs {best}-{best} of exp/ge2e_ft" in proc.stdout
    kept = torch.load(exp / "models" / "avg_model.pt", map_location="cpu")
    trained_weights = {e: torch.load(exp / "models" / f"model_{e}.pt", map_location="cpu")["model"] for e in (1, 2)}
    pretrained = torch.load(recipe / "exp" / "pretrained_ge2e" / "avg_model.pt", map_location="cpu")
    for name in pretrained:
        torch.testing.assert_close(kept[name], trained_weights[best][name], rtol=0, atol=0, msg=name)
    assert not torch.equal(trained_weights[1]["lstm.weight_hh_l2"], pretrained["lstm.weight_hh_l2"])
    assert not torch.equal(trained_weights[2]["lstm.weight_hh_l2"], trained_weights[1]["lstm.weight_hh_l2"])
    # the fine-tuned model dir loads and embeds as the recipe's extraction did
    wav_scp = dict(line.split(maxsplit=1) for line in read_lines(recipe / "data" / "dev" / "wav.scp"))
    key, path = next(iter(wav_scp.items()))
    monkeypatch.chdir(recipe)   # the scp names the ark relative to the recipe
    extracted = kaldiio.load_scp("exp/ge2e_ft/embeddings/dev/xvector.scp")[key]
    embedder = wespk.load_model(str(exp))
    # (the same features and weights; float32 sums in another order)
    torch.testing.assert_close(torch.as_tensor(embedder.embed(path)).reshape(-1), torch.tensor(extracted),
                               rtol=0, atol=1e-5)
    trials = [line.split()[:2] for line in read_lines(recipe / "data" / "dev" / "trials")]
    assert [s.split()[:2] for s in read_lines(exp / "scores" / "dev.score")] == trials


def test_finetune_freezes_layers(trained):
    """Stage 3 again from the trained model with the fine-tuning config: frozen
    layers keep their weights, the others move."""
    recipe, _ = trained
    init = recipe / "exp" / "resnet34_small" / "models" / "avg_model.pt"
    run(["bash", "run.sh", "--stage", "3", "--stop_stage", "4", "--config", "conf/resnet34_finetune.yaml",
         "--exp_dir", "exp/finetune", "--model_init", str(init),
         "--train_args", FAST + " --model_args.embed_dim 128 --model_args.m_channels 8"
         " --dataloader_args.drop_last false --dataset_args.filter_args.min_num_frames 50"],
        cwd=recipe, timeout=600)
    before = torch.load(init, map_location="cpu")
    after = torch.load(recipe / "exp" / "finetune" / "models" / "avg_model.pt", map_location="cpu")
    before = before.get("model", before)
    after = after.get("model", after)
    frozen = [k for k in before if k.split(".")[0] in ("conv1", "bn1", "layer1")
              and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert frozen
    for key in frozen:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0, msg=key)
    assert not torch.equal(after["layer4.0.conv1.weight"], before["layer4.0.conv1.weight"])
    # the pretrained head is left behind (--init_head false): a new one for the training speakers
    log = (recipe / "exp" / "finetune" / "train.log").read_text()
    assert "initialised the encoder from exp/finetune/init_encoder.pt; new head for 5 classes" in log
    assert not any(k.startswith("projection.") for k in torch.load(recipe / "exp" / "finetune" / "init_encoder.pt"))


def manifest_rows(files):
    rows = []
    for spk, utt, path in files:
        info = soundfile.info(str(path))
        rows.append((spk, utt, os.path.realpath(path), info.frames / info.samplerate))
    return rows


@pytest.mark.parametrize("layout", ["csv", "jsonl"])
def test_manifest_layouts(layout, corpus_tree, tmp_path):
    """Stage 1 from a SpeechBrain-style CSV or a NeMo-style JSON-lines manifest."""
    _, files = corpus_tree
    rows = manifest_rows(files)
    if layout == "csv":
        manifest = tmp_path / "train.csv"
        manifest.write_text("ID,duration,wav,spk_id\n" +
                            "".join(f"{utt},{dur:.3f},{path},{spk}\n" for spk, utt, path, dur in rows))
    else:
        manifest = tmp_path / "train.jsonl"
        manifest.write_text("".join(json.dumps({"audio_filepath": path, "duration": dur, "label": spk}) + "\n"
                                    for spk, utt, path, dur in rows))
    recipe = copy_recipe("custom/v1", tmp_path / "v1")
    run(["bash", "run.sh", "--stage", "1", "--stop_stage", "1", "--source", str(manifest), "--layout", layout,
         "--prefix", "mine", "--dev_ratio", "0.4"], cwd=recipe)
    utt2spk = [line.split() for line in read_lines(recipe / "data" / "all" / "utt2spk")]
    assert len(utt2spk) == len(files)
    assert {spk for _, spk in utt2spk} == {f"mine-{spk}" for spk, _, _ in files}
    assert all(utt.startswith((spk + "-", spk + "_")) for utt, spk in utt2spk)
    dev_spk = read_lines(recipe / "data" / "dev" / "spk2utt")
    assert len(dev_spk) == round(0.4 * NUM_SPEAKERS)
    validate(recipe / "data" / "dev")


def test_speaker_split_is_seeded(tmp_path):
    spk2utt = tmp_path / "spk2utt"
    spk2utt.write_text("".join(f"s{i:02d} " + " ".join(f"s{i:02d}-u{j}" for j in range(1 + i % 3)) + "\n"
                               for i in range(20)))
    script = str(REPO / "local" / "split_speakers.py")

    def split(seed):
        subprocess.run([sys.executable, script, "--dev_speakers", "5", "--seed", str(seed), str(spk2utt),
                        str(tmp_path / "train"), str(tmp_path / "dev")], check=True, capture_output=True)
        return read_lines(tmp_path / "train"), read_lines(tmp_path / "dev")

    train, dev = split(1)
    assert split(1) == (train, dev)
    assert split(2)[1] != dev
    assert len(dev) == 5 and sorted(train + dev) == [f"s{i:02d}" for i in range(20)]
    # dev speakers all have two or more utterances (speakers 0, 3, 6 ... have one)
    assert not {f"s{i:02d}" for i in range(0, 20, 3)} & set(dev)
    proc = subprocess.run([sys.executable, script, "--dev_speakers", "20", str(spk2utt), str(tmp_path / "t"),
                           str(tmp_path / "d")], capture_output=True, text=True)
    assert proc.returncode == 1 and "only 13 speakers have 2 or more utterances" in proc.stderr
