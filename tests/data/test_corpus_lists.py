"""Official VoxCeleb / CN-Celeb lists to Kaldi files (wespk.data.corpus_lists)."""

import pytest

from wespk.data.corpus_lists import (check_trial_keys, cnceleb_enroll_utterances, cnceleb_utt_id, locate_audio,
                                     prepare_cnceleb_eval, read_cnceleb_trials, read_enroll_map,
                                     read_voxceleb_trials, voxceleb_utt_id)
from wespk.data.importers import CorpusImportError, import_folder
from wespk.io.files import DataFileError
from tests.recipes.helpers import make_cnceleb_trees, write_audio


def test_voxceleb_ids_are_the_importers(tmp_path):
    rels = ["id10270/x6uYqmx31kE/00001.wav", "id10270/-2R7Ah_Un0U/00012.wav", "id10001/1zcIwhmdeo4/00001.wav"]
    for i, rel in enumerate(rels):
        write_audio(tmp_path / "wav" / rel, 0.2, seed=i)
    imported = {u.path.split("/wav/")[1]: u.utt for u in import_folder(str(tmp_path / "wav"))}
    for rel in rels:
        assert voxceleb_utt_id(rel) == imported[rel]
    assert voxceleb_utt_id(rels[0]) == "id10270-x6uYqmx31kE-00001"
    with_prefix = {u.path.split("/wav/")[1]: u.utt for u in import_folder(str(tmp_path / "wav"), prefix="vox1")}
    assert voxceleb_utt_id(rels[1], prefix="vox1") == with_prefix[rels[1]] == "vox1-id10270--2R7Ah_Un0U-00012"


def test_voxceleb_trials_label_first(tmp_path):
    path = tmp_path / "veri_test2.txt"
    path.write_text("1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n"
                    "\n"
                    "0 id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav\n")
    assert read_voxceleb_trials(str(path)) == [
        ("id10270-x6uYqmx31kE-00001", "id10270-8jEAjG6SegY-00008", "target"),
        ("id10270-x6uYqmx31kE-00001", "id10300-ize_eiCFEg0-00003", "nontarget")]
    path.write_text("1 a/b/1.wav a/b/2.wav\nid10270/x/1.wav id10270/y/2.wav 1\n")
    with pytest.raises(DataFileError, match=r"veri_test2.txt:2: label must be 1 or 0, got 'id10270/x/1.wav'"):
        read_voxceleb_trials(str(path))
    path.write_text("1 a/b/1.wav\n")
    with pytest.raises(DataFileError, match=r":1: expected '1\|0 enroll_path test_path'"):
        read_voxceleb_trials(str(path))
    path.write_text("1 nodir.wav a/b/2.wav\n")
    with pytest.raises(DataFileError, match=r":1: 'nodir.wav': expected <speaker>"):
        read_voxceleb_trials(str(path))


def test_cnceleb_trials_label_last(tmp_path):
    path = tmp_path / "trials.lst"
    path.write_text("id00800-enroll test/id00800-singing-01-001.wav 1\n"
                    "id00801-enroll test/id00800-singing-01-001.flac 0\n")
    assert read_cnceleb_trials(str(path)) == [("id00800-enroll", "id00800-singing-01-001", "target"),
                                               ("id00801-enroll", "id00800-singing-01-001", "nontarget")]
    assert cnceleb_utt_id("test/id00800-singing-01-001.wav") == "id00800-singing-01-001"


def test_locate_audio_accepts_another_extension(tmp_path):
    write_audio(tmp_path / "enroll" / "id00800-enroll.flac", 0.2, seed=1, fmt="FLAC")
    assert locate_audio(str(tmp_path), "enroll/id00800-enroll.wav") == str(tmp_path / "enroll" / "id00800-enroll.flac")
    assert locate_audio(str(tmp_path), "enroll/id00801-enroll.wav") is None


def test_enrollment_modes(tmp_path):
    info = make_cnceleb_trees(tmp_path)
    root = str(info["cn1"])
    concat = cnceleb_enroll_utterances(root, "concat")
    assert [(u.utt, u.spk) for u in concat] == [("id00800-enroll", "id00800"), ("id00801-enroll", "id00801")]
    average = cnceleb_enroll_utterances(root, "average")
    names = info["names"]
    assert [(u.utt, u.spk) for u in average] == [
        (f"{spk}-enroll-{name}", f"{spk}-enroll") for spk in ("id00800", "id00801") for name in names[:2]]
    assert average[0].path.endswith(f"/data/id00800/{names[0]}.flac")
    assert read_enroll_map(str(info["cn1"] / "eval" / "lists" / "enroll.map"))["id00801-enroll"] == [
        f"id00801/{name}.wav" for name in names[:2]]
    with pytest.raises(ValueError, match="enroll_mode"):
        cnceleb_enroll_utterances(root, "mean")


@pytest.mark.parametrize("mode", ["concat", "average"])
def test_prepare_cnceleb_eval(tmp_path, mode):
    info = make_cnceleb_trees(tmp_path / "corpus")
    out = tmp_path / "data"
    _, enroll_report, count = prepare_cnceleb_eval(str(info["cn1"]), str(out / "test"), str(out / "enroll"),
                                                   str(out / "trials" / "CNC-Eval"), enroll_mode=mode,
                                                   num_threads=2)
    assert count == len(info["trials"])
    assert (out / "trials" / "CNC-Eval").read_text().splitlines() == info["trials"]
    assert enroll_report.num_utterances == (2 if mode == "concat" else 4)
    assert [line.split()[0] for line in (out / "test" / "utt2spk").read_text().splitlines()] == info["tests"]


def test_unknown_trial_ids_are_named(tmp_path):
    info = make_cnceleb_trees(tmp_path / "corpus")
    lists = info["cn1"] / "eval" / "lists"
    lists.joinpath("trials.lst").write_text("id00802-enroll test/id00800-speech-02-001.wav 1\n")
    with pytest.raises(ValueError, match=r"trials.lst: 1 enrollment id\(s\) not found, e.g. id00802-enroll"):
        prepare_cnceleb_eval(str(info["cn1"]), str(tmp_path / "t"), str(tmp_path / "e"), str(tmp_path / "trials"))
    with pytest.raises(ValueError, match=r"2 test id\(s\) not found, e.g. x, y"):
        check_trial_keys([("a", "x", "target"), ("a", "y", "nontarget")], {"a"}, set(), "list")
    (info["cn1"] / "eval" / "enroll" / "id00801-enroll.flac").unlink()
    with pytest.raises(CorpusImportError, match=r"enroll.lst: 1 listed file\(s\) not found"):
        cnceleb_enroll_utterances(str(info["cn1"]), "concat")
