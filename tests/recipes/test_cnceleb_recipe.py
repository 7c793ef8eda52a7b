"""CN-Celeb recipe on miniature CN-Celeb1/2 trees (FLAC): stages 1-2 in both
enrollment modes (one run downloading the archives from 127.0.0.1), and the
scoring stages of the averaged enrollment with a one-epoch model."""

import kaldiio
import numpy as np
import pytest
import yaml

from tests.recipes.helpers import (ArchiveServer, copy_recipe, make_cnceleb_trees, make_musan_tree, make_rirs_tree,
                                   md5, read_lines, run, split_bytes, tar_gz_dir, validate, zip_dir)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("cnc_corpus")
    info = make_cnceleb_trees(root)
    make_musan_tree(root / "aug")
    make_rirs_tree(root / "aug")
    archives = {
        "cn-celeb_v2.tar.gz": tar_gz_dir(info["cn1"], "CN-Celeb_flac"),
        "cn-celeb2_v2.tar.gz": tar_gz_dir(info["cn2"], "CN-Celeb2_flac"),
        "musan.tar.gz": tar_gz_dir(root / "aug" / "musan", "musan"),
        "rirs_noises.zip": zip_dir(root / "aug" / "RIRS_NOISES", "RIRS_NOISES"),
    }
    files = {"/o/82/cn-celeb_v2.tar.gz": archives["cn-celeb_v2.tar.gz"],
             "/o/17/musan.tar.gz": archives["musan.tar.gz"], "/o/28/rirs_noises.zip": archives["rirs_noises.zip"]}
    for suffix, part in zip(("aa", "ab", "ac"), split_bytes(archives["cn-celeb2_v2.tar.gz"], 3)):
        files[f"/o/82/cn-celeb2_v2.tar.gz{suffix}"] = part
    checksums = root / "checksums.md5"
    checksums.write_text("".join(f"{md5(data)}  {name}\n" for name, data in archives.items()))
    info.update(root=root, files=files, archives=archives, checksums=checksums)
    return info


@pytest.fixture(scope="module")
def concat_run(corpus, tmp_path_factory):
    """Stages 1-2 with --enroll_mode concat, everything downloaded from the local server."""
    recipe = copy_recipe("cnceleb/v2", tmp_path_factory.mktemp("cnc") / "v2")
    with ArchiveServer(corpus["files"]) as server:
        proc = run(["bash", "run.sh", "--stage", "1", "--stop_stage", "2", "--download", "true",
                    "--openslr_base_url", f"{server.url}/o", "--checksums", str(corpus["checksums"]),
                    "--enroll_mode", "concat", "--nj", "2", "--cali_rounds", "10", "--num_utts_per_shard", "8"],
                   cwd=recipe)
    return recipe, proc


def test_concat_data_dirs_and_trials(concat_run, corpus):
    recipe, _ = concat_run
    data = recipe / "data"
    for name in ("cnceleb_train", "cnc_test", "cnc_enroll_concat"):
        validate(data / name)
    # CN-Celeb1's dev speakers and CN-Celeb2, never the evaluation speakers
    speakers = [line.split()[0] for line in read_lines(data / "cnceleb_train" / "spk2utt")]
    assert speakers == ["id00000", "id00001", "id00002", "id10000", "id10001"]
    assert read_lines(data / "cnceleb_train" / "utt2spk")[0] == "id00000-interview-01-001 id00000"
    test_utts = [line.split()[0] for line in read_lines(data / "cnc_test" / "utt2spk")]
    assert test_utts == corpus["tests"]
    assert read_lines(data / "cnc_enroll_concat" / "utt2spk") == ["id00800-enroll id00800", "id00801-enroll id00801"]
    # the .wav the list names is found as the .flac of the release
    assert read_lines(data / "cnc_enroll_concat" / "wav.scp")[0].endswith("/eval/enroll/id00800-enroll.flac")
    assert read_lines(data / "trials" / "CNC-Eval") == corpus["trials"]
    assert len(read_lines(data / "cnceleb_train" / "cali_trials")) == 60
    assert len(read_lines(data / "cnceleb_train" / "shard.list")) == 3  # 20 utterances, 8 a shard
    assert len(read_lines(data / "musan" / "wav.scp")) == 6 and len(read_lines(data / "rirs" / "wav.scp")) == 3


@pytest.fixture(scope="module")
def average_run(corpus, tmp_path_factory):
    """Stages 1-2 with --enroll_mode average on the unpacked trees, raw lists, no augmentation."""
    recipe = copy_recipe("cnceleb/v2", tmp_path_factory.mktemp("cnc_avg") / "v2")
    proc = run(["bash", "run.sh", "--stage", "1", "--stop_stage", "2", "--cnceleb1_dir", str(corpus["cn1"]),
                "--cnceleb2_dir", str(corpus["cn2"]), "--enroll_mode", "average", "--aug_sets", "",
                "--data_type", "raw", "--nj", "2", "--cali_rounds", "10"], cwd=recipe)
    return recipe, proc


def test_average_enrollment_data_dir(average_run, corpus):
    recipe, _ = average_run
    data = recipe / "data"
    validate(data / "cnc_enroll_average")
    names = corpus["names"]
    assert read_lines(data / "cnc_enroll_average" / "spk2utt") == [
        f"{spk}-enroll {spk}-enroll-{names[0]} {spk}-enroll-{names[1]}" for spk in ("id00800", "id00801")]
    paths = [line.split()[1] for line in read_lines(data / "cnc_enroll_average" / "wav.scp")]
    assert paths[0] == str(corpus["cn1"] / "data" / "id00800" / f"{names[0]}.flac")
    assert read_lines(data / "trials" / "CNC-Eval") == corpus["trials"]
    assert len(read_lines(data / "cnceleb_train" / "raw.list")) == 12 + 8  # 3 + 2 speakers x 4
    assert not (data / "musan").exists()


def test_missing_enrollment_file_is_named(corpus, tmp_path):
    import shutil
    cn1 = tmp_path / "CN-Celeb_flac"
    shutil.copytree(corpus["cn1"], cn1)
    (cn1 / "data" / "id00801" / f"{corpus['names'][1]}.flac").unlink()
    recipe = copy_recipe("cnceleb/v2", tmp_path / "v2")
    proc = run(["bash", "local/prepare_data.sh", "--cnceleb1_dir", str(cn1), "--cnceleb2_dir", "none",
                "--enroll_mode", "average", "--aug_sets", "", "--nj", "2"], cwd=recipe, check=False)
    assert proc.returncode != 0
    assert "enroll.map: 1 listed file(s) not found" in proc.stderr and "id00801/singing-01-002" in proc.stderr


TINY = {
    "exp_dir": "exp/tiny", "seed": 7, "num_epochs": 1, "num_avg": 1, "log_batch_interval": 1,
    "data_type": "raw",
    "dataloader_args": {"batch_size": 4, "num_workers": 0},
    "dataset_args": {"shuffle": True, "shuffle_args": {"shuffle_size": 10}, "speed_perturb": False,
                     "num_frms": 100, "aug_prob": 0.0,
                     "fbank_args": {"num_mel_bins": 40, "frame_shift": 10, "frame_length": 25, "dither": 1.0}},
    "model": "ResNet34",
    "model_args": {"feat_dim": 40, "embed_dim": 16, "pooling_func": "TSTP", "two_emb_layer": False,
                   "m_channels": 4},
    "projection_args": {"project_type": "arc_margin", "scale": 16.0, "easy_margin": False},
    "loss": "CrossEntropyLoss",
    "optimizer": "SGD", "optimizer_args": {"momentum": 0.9, "nesterov": True, "weight_decay": 1.0e-4},
    "scheduler": "ExponentialDecrease",
    "scheduler_args": {"initial_lr": 0.1, "final_lr": 0.05, "warm_up_epoch": 0},
}


def test_average_enrollment_is_the_mean_embedding(average_run, monkeypatch):
    """Stages 3-9 with a one-epoch model: the enrollment embedding is the mean of
    its utterances', its duration their sum, and every trial is scored."""
    recipe, _ = average_run
    (recipe / "conf" / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    proc = run(["bash", "run.sh", "--stage", "3", "--stop_stage", "9", "--config", "conf/tiny.yaml",
                "--enroll_mode", "average", "--aug_sets", "", "--data_type", "raw", "--nj", "1", "--top_n", "3"],
               cwd=recipe, timeout=600)
    monkeypatch.chdir(recipe)  # the scp files name their arks relative to the recipe
    emb = recipe / "exp" / "tiny" / "embeddings"
    utts = kaldiio.load_scp(str(emb / "cnc_enroll_average" / "xvector.scp"))
    scored = kaldiio.load_scp(str(emb / "cnc_eval_average" / "xvector.scp"))
    for spk in ("id00800", "id00801"):
        mine = [v for k, v in utts.items() if k.startswith(f"{spk}-enroll-")]
        assert len(mine) == 2
        np.testing.assert_allclose(scored[f"{spk}-enroll"], np.mean(mine, axis=0), rtol=1e-6, atol=1e-6)
    durations = dict(line.split() for line in read_lines(emb / "cnc_eval_average" / "utt2dur"))
    assert float(durations["id00800-enroll"]) == pytest.approx(2.5 + 7.0, abs=0.01)
    scores = recipe / "exp" / "tiny" / "scores"
    trials = read_lines(recipe / "data" / "trials" / "CNC-Eval")
    for name in ("CNC-Eval.average.score", "CNC-Eval.average.asnorm3.score", "CNC-Eval.average.qmf.score"):
        lines = read_lines(scores / name)
        assert [line.split()[:2] for line in lines] == [t.split()[:2] for t in trials], name
    report = (recipe / "exp" / "tiny" / "results.average.md").read_text()
    assert "CNC-Eval.average.qmf.score" in report
    assert "EER = " in proc.stdout
