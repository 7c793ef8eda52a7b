"""VoxCeleb recipe, stages 1-2, on miniature VoxCeleb1/2, MUSAN and RIRS_NOISES
archives served from 127.0.0.1: download, unpack, data dirs, trial lists, shards."""

import os
import shutil
import subprocess

import pytest
import yaml

from tests.recipes.helpers import (ArchiveServer, copy_recipe, make_musan_tree, make_rirs_tree, make_voxceleb_tree,
                                   md5, read_lines, run, split_bytes, tar_gz_dir, validate, zip_dir)

VOX1_DEV = ["id10001", "id10002"]
VOX1_TEST = ["id10270", "id10271"]
VOX2_DEV = ["id00012", "id00015", "id00017"]


def official_trials(rels, pairs):
    """Lines of an official list (label first) and the Kaldi lines they must become."""
    official, kaldi = [], []
    for a, b in pairs:
        label = int(rels[a].split("/")[0] == rels[b].split("/")[0])
        official.append(f"{label} {rels[a]} {rels[b]}")
        kaldi.append(f"{rels[a][:-4].replace('/', '-')} {rels[b][:-4].replace('/', '-')} "
                     f"{'target' if label else 'nontarget'}")
    return official, kaldi


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Archives shaped like the real ones, their md5 list, and the expected trial lists."""
    root = tmp_path_factory.mktemp("vox_corpus")
    vox1_dev = make_voxceleb_tree(root / "vox1_dev" / "wav", VOX1_DEV)
    vox1_test = make_voxceleb_tree(root / "vox1_test" / "wav", VOX1_TEST)
    vox2 = make_voxceleb_tree(root / "vox2" / "dev" / "aac", VOX2_DEV)
    make_musan_tree(root / "aug")
    make_rirs_tree(root / "aug")

    archives = {
        "vox1_dev_wav.zip": zip_dir(root / "vox1_dev" / "wav", "wav"),
        "vox1_test_wav.zip": zip_dir(root / "vox1_test" / "wav", "wav"),
        "vox2_dev_aac.zip": zip_dir(root / "vox2" / "dev", "dev"),
        "musan.tar.gz": tar_gz_dir(root / "aug" / "musan", "musan"),
        "rirs_noises.zip": zip_dir(root / "aug" / "RIRS_NOISES", "RIRS_NOISES"),
    }
    files = {"/openslr/17/musan.tar.gz": archives["musan.tar.gz"],
             "/openslr/28/rirs_noises.zip": archives["rirs_noises.zip"],
             "/vox/vox1_test_wav.zip": archives["vox1_test_wav.zip"]}
    sums = {name: md5(data) for name, data in archives.items()}
    for archive, prefix, count in (("vox1_dev_wav.zip", "vox1_dev_wav_parta", 4),
                                   ("vox2_dev_aac.zip", "vox2_dev_aac_parta", 8)):
        for letter, part in zip("abcdefgh", split_bytes(archives[archive], count)):
            files[f"/vox/{prefix}{letter}"] = part
            sums[f"{prefix}{letter}"] = md5(part)

    vox1 = vox1_dev + vox1_test
    n_test = len(vox1_test)
    lists, expected = {}, {}
    o_pairs = [(len(vox1_dev) + i, len(vox1_dev) + j) for i in range(n_test) for j in range(i + 1, n_test)][:12]
    e_pairs = [(i, j) for i in range(len(vox1)) for j in range(i + 1, len(vox1)) if (i + j) % 3 == 0]
    h_pairs = [(i, j) for i in range(len(vox1)) for j in range(i + 1, len(vox1))
               if vox1[i][:7] == vox1[j][:7] or (i * j) % 5 == 1]
    for name, official_name, pairs in (("O", "veri_test2.txt", o_pairs), ("E", "list_test_all2.txt", e_pairs),
                                       ("H", "list_test_hard2.txt", h_pairs)):
        official, kaldi = official_trials(vox1, pairs)
        files[f"/meta/{official_name}"] = ("\n".join(official) + "\n").encode()
        expected[f"vox1_{name}_cleaned"] = kaldi
        lists[name] = official
    checksums = root / "checksums.md5"
    checksums.write_text("".join(f"{digest}  {name}\n" for name, digest in sums.items()))
    return {"root": root, "files": files, "archives": archives, "checksums": checksums, "expected": expected,
            "vox1": vox1, "vox2": vox2, "lists": lists}


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    """run.sh stages 1-2, downloading everything from the local server."""
    recipe = copy_recipe("voxceleb/v2", tmp_path_factory.mktemp("vox") / "v2")
    with ArchiveServer(corpus["files"]) as server:
        args = ["bash", "run.sh", "--stage", "1", "--stop_stage", "2", "--download", "true",
                "--vox_base_url", f"{server.url}/vox", "--openslr_base_url", f"{server.url}/openslr",
                "--meta_base_url", f"{server.url}/meta", "--checksums", str(corpus["checksums"]),
                "--nj", "2", "--cali_rounds", "10", "--num_utts_per_shard", "4"]
        first = run(args, cwd=recipe)
        count = len(server.requests)
        second = run(args, cwd=recipe)  # everything is there: nothing fetched, nothing unpacked
        assert len(server.requests) == count
    return recipe, first, second


def test_downloads_are_checked_and_parts_joined(prepared, corpus):
    recipe, first, second = prepared
    dl = recipe / "data" / "download"
    for name, data in corpus["archives"].items():
        assert (dl / name).read_bytes() == data, name
    assert not list(dl.glob("*_parta?"))  # joined, checked, removed
    assert "already there (md5 checked)" in second.stderr
    assert "unpacking" in first.stdout and "unpacking" not in second.stdout


def test_data_dirs_validate(prepared, corpus):
    recipe, _, _ = prepared
    data = recipe / "data"
    for name in ("vox1", "vox2_dev"):
        validate(data / name)
    vox1_utts = [line.split()[0] for line in read_lines(data / "vox1" / "utt2spk")]
    assert vox1_utts == sorted(rel[:-4].replace("/", "-") for rel in corpus["vox1"])
    spk2utt = dict(line.split(maxsplit=1) for line in read_lines(data / "vox2_dev" / "spk2utt"))
    assert sorted(spk2utt) == VOX2_DEV
    assert all(len(v.split()) == 4 for v in spk2utt.values())
    for line in read_lines(data / "vox2_dev" / "wav.scp"):
        utt, path = line.split(maxsplit=1)
        assert path.startswith(str(recipe / "data" / "raw" / "voxceleb2" / "dev" / "aac"))
        assert utt == path.split("/aac/")[1][:-4].replace("/", "-")
    assert len(read_lines(data / "vox1" / "utt2dur")) == len(corpus["vox1"])
    for name, count in (("musan", 6), ("rirs", 3)):
        assert len(read_lines(data / name / "wav.scp")) == count
        assert len(read_lines(data / name / "utt2dur")) == count
    assert sorted({line.split()[1] for line in read_lines(data / "musan" / "utt2category")}) == \
        ["music", "noise", "speech"]


def test_trial_lists_are_converted(prepared, corpus):
    recipe, _, _ = prepared
    for name, expected in corpus["expected"].items():
        assert read_lines(recipe / "data" / "trials" / name) == expected
    known = {line.split()[0] for line in read_lines(recipe / "data" / "vox1" / "utt2spk")}
    o = read_lines(recipe / "data" / "trials" / "vox1_O_cleaned")
    assert {w for line in o for w in line.split()[:2]} <= known
    assert {line.split()[2] for line in o} == {"target", "nontarget"}


def test_calibration_trials_and_shards(prepared):
    recipe, _, _ = prepared
    cali = read_lines(recipe / "data" / "vox2_dev" / "cali_trials")
    assert len(cali) == 60
    utts = {line.split()[0] for line in read_lines(recipe / "data" / "vox2_dev" / "utt2spk")}
    assert all(a in utts and b in utts and label in ("target", "nontarget")
               for a, b, label in (line.split() for line in cali))
    shards = read_lines(recipe / "data" / "vox2_dev" / "shard.list")
    assert len(shards) == 3 and all((recipe / s).is_file() for s in shards)  # absolute or recipe-relative


def test_bad_trial_list_names_the_line(corpus, tmp_path):
    """A list naming an utterance the data dir lacks, or a malformed line, stops stage 1."""
    recipe = copy_recipe("voxceleb/v2", tmp_path / "v2")
    root = corpus["root"]
    trials = tmp_path / "lists"
    trials.mkdir()
    (trials / "veri_test2.txt").write_text("\n".join(corpus["lists"]["O"]) + "\n")
    (trials / "list_test_all2.txt").write_text("1 id10270/nope/00001.wav id10270/-v00_00Xq/00001.wav\n")
    (trials / "list_test_hard2.txt").write_text("2 a/b/c.wav a/b/d.wav\n")
    proc = run(["bash", "local/prepare_data.sh", "--vox1_dirs", f"{root}/vox1_dev/wav {root}/vox1_test/wav",
                "--vox2_dev_dir", str(root / "vox2" / "dev" / "aac"), "--trials_dir", str(trials),
                "--aug_sets", "", "--nj", "2"], cwd=recipe, check=False)
    assert proc.returncode != 0
    assert "list_test_all2.txt: 1 enrollment id(s) not found, e.g. id10270-nope-00001" in proc.stderr
    assert (recipe / "data" / "trials" / "vox1_O_cleaned").exists()
    (trials / "list_test_all2.txt").write_text("\n".join(corpus["lists"]["E"]) + "\n")
    proc = run(["bash", "local/prepare_data.sh", "--vox1_dirs", f"{root}/vox1_dev/wav {root}/vox1_test/wav",
                "--vox2_dev_dir", str(root / "vox2" / "dev" / "aac"), "--trials_dir", str(trials),
                "--aug_sets", "", "--nj", "2"], cwd=recipe, check=False)
    assert proc.returncode != 0 and "list_test_hard2.txt:1: label must be 1 or 0, got '2'" in proc.stderr


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_m4a_is_converted(corpus, tmp_path):
    """VoxCeleb2 as m4a: converted in parallel, then imported; a second run converts nothing."""
    m4a_root = tmp_path / "vox2_m4a"
    for rel in corpus["vox2"][:6]:
        wav = corpus["root"] / "vox2" / "dev" / "aac" / rel
        out = m4a_root / (rel[:-4] + ".m4a")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(wav), "-c:a", "aac", str(out)],
                       check=True)
    recipe = copy_recipe("voxceleb/v2", tmp_path / "v2")
    # through prepare_data.sh: found to be m4a, converted, imported
    root = corpus["root"]
    lists = tmp_path / "lists"
    lists.mkdir()
    for name, key in (("veri_test2.txt", "O"), ("list_test_all2.txt", "E"), ("list_test_hard2.txt", "H")):
        (lists / name).write_text("\n".join(corpus["lists"][key]) + "\n")
    run(["bash", "local/prepare_data.sh", "--vox1_dirs", f"{root}/vox1_dev/wav {root}/vox1_test/wav",
         "--vox2_dev_dir", str(m4a_root), "--vox2_format", "wav", "--trials_dir", str(lists),
         "--aug_sets", "", "--nj", "2"], cwd=recipe)
    wav_scp = read_lines(recipe / "data" / "vox2_dev" / "wav.scp")
    assert len(wav_scp) == 6
    assert all(line.split()[1].startswith(str(recipe / "data" / "raw" / "vox2_dev_wav")) and
               line.endswith(".wav") for line in wav_scp)
    validate(recipe / "data" / "vox2_dev")

    (m4a_root / "id00012" / "broken").mkdir()
    raw = tmp_path / "raw"
    convert = ["bash", "local/convert_m4a.sh", "--nj", "2", "--format", "flac", str(m4a_root), str(raw)]
    proc = run(convert, cwd=recipe)
    flacs = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*.flac"))
    assert flacs == sorted(rel[:-4] + ".flac" for rel in corpus["vox2"][:6])
    import soundfile
    info = soundfile.info(str(raw / flacs[0]))
    assert (info.samplerate, info.channels) == (16000, 1)
    mtime = (raw / flacs[0]).stat().st_mtime_ns
    run(convert, cwd=recipe)
    assert (raw / flacs[0]).stat().st_mtime_ns == mtime
    # a file ffmpeg cannot read is listed and fails the run
    (m4a_root / "id00012" / "broken" / "00001.m4a").write_bytes(b"not audio")
    proc = run(convert, cwd=recipe, check=False)
    assert proc.returncode != 0 and "convert_failed.txt" in proc.stdout
    assert "broken/00001.m4a" in (raw / "convert_failed.txt").read_text()


TINY_OVERRIDES = {
    "exp_dir": "exp/tiny", "num_epochs": 1, "num_avg": 1, "log_batch_interval": 1, "save_epoch_interval": 1,
    "dataloader_args": {"batch_size": 4, "num_workers": 0, "pin_memory": False, "drop_last": True},
}


def tiny_config(src, lm: bool):
    """A shipped config shrunk to one epoch of a 4-channel ResNet34 (the structure stays)."""
    config = yaml.safe_load(src.read_text())
    config.update(TINY_OVERRIDES)
    config["exp_dir"] += "-LM" if lm else ""
    config["dataset_args"].update(num_frms=150 if lm else 100, shuffle_args={"shuffle_size": 10})
    config["model_args"].update(m_channels=4, embed_dim=16)
    config["scheduler_args"]["warm_up_epoch"] = 0
    config["margin_update"].update(increase_start_epoch=1, fix_start_epoch=1)
    return yaml.safe_dump(config)


@pytest.mark.skipif(not os.environ.get("WESPK_FULL_RECIPE_TESTS"),
                    reason="about 2 minutes on 2 cores; set WESPK_FULL_RECIPE_TESTS=1 to run it")
def test_stages_3_to_11(prepared):
    """Training to export, then the large-margin run from the averaged model, with the
    shipped ResNet34 configs shrunk to one epoch of a tiny network."""
    recipe, _, _ = prepared
    conf = recipe / "conf"
    (conf / "tiny.yaml").write_text(tiny_config(conf / "resnet34.yaml", lm=False))
    (conf / "tiny_lm.yaml").write_text(tiny_config(conf / "resnet34_lm.yaml", lm=True))
    proc = run(["bash", "run.sh", "--stage", "3", "--stop_stage", "11", "--config", "conf/tiny.yaml",
                "--lm_config", "conf/tiny_lm.yaml", "--nj", "1", "--top_n", "2"], cwd=recipe, timeout=1200)
    for exp, classes in (("exp/tiny", 3 * len(VOX2_DEV)), ("exp/tiny-LM", len(VOX2_DEV))):
        for name in ("vox1_O_cleaned", "vox1_E_cleaned", "vox1_H_cleaned"):
            for suffix in ("score", "asnorm2.score", "qmf.score"):
                assert (recipe / exp / "scores" / f"{name}.{suffix}").exists()
        assert (recipe / exp / "models" / "final.onnx").exists() and (recipe / exp / "results.md").exists()
        assert yaml.safe_load((recipe / exp / "config.yaml").read_text())["num_class"] == classes
    log = (recipe / "exp" / "tiny-LM" / "train.log").read_text()
    assert "truncating projection.weight from 9 to 3 rows" in log
    assert "stage 11" in proc.stdout and proc.stdout.count("stage 10") == 2
