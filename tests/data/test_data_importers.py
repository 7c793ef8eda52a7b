"""Importers: folder trees, CSV and JSON-lines manifests, prefixes, segments."""

import csv
import json
import os
import shutil
import subprocess

import pytest
import soundfile

from wespk.bin.prepare_data import find_validator, main as prepare_main
from wespk.data.dataset import EvalDataset
from wespk.data.importers import (CorpusImportError, import_folder, make_ids, prepare_data_dir)
from wespk.io.files import DataFileError, read_kaldi_map, read_spk2utt

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def c_sorted(keys):
    return sorted(keys, key=lambda k: k.encode("utf-8"))


def check_data_dir(path):
    """The data-dir contract: sorted files, consistent speakers, validator OK."""
    utt2spk = read_kaldi_map(os.path.join(path, "utt2spk"))
    assert list(utt2spk) == c_sorted(utt2spk)
    for utt, spk in utt2spk.items():
        assert utt.startswith(spk)
    spk2utt = read_spk2utt(os.path.join(path, "spk2utt"))
    assert {u: s for s, us in spk2utt.items() for u in us} == dict(utt2spk)
    wav_scp = read_kaldi_map(os.path.join(path, "wav.scp"))
    assert list(wav_scp) == c_sorted(wav_scp)
    validator = find_validator()
    if validator:
        proc = subprocess.run(["bash", validator, path], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return utt2spk


@pytest.fixture
def nested_corpus(corpus_dir, tmp_path):
    """``<root>/<speaker>/<session>/<n>.wav`` (VoxCeleb-like depth)."""
    root = tmp_path / "vox"
    for speaker in sorted(os.listdir(corpus_dir)):
        for i, name in enumerate(sorted(os.listdir(os.path.join(corpus_dir, speaker)))[:2]):
            target = root / speaker.replace("-", "") / f"session{i % 2}" / f"{i:05d}.wav"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(os.path.join(corpus_dir, speaker, name), target)
    return str(root)


def test_make_ids():
    assert make_ids("id10001", "1zcIwhmdeo4-00001", None) == ("id10001", "id10001-1zcIwhmdeo4-00001")
    assert make_ids("spk1", "spk1_utt3", None) == ("spk1", "spk1_utt3")
    assert make_ids("spk 1", "utt 3", "vox") == ("vox-spk_1", "vox-spk_1-utt_3")


def test_folder_import_any_depth_with_prefix(nested_corpus, tmp_path):
    out = str(tmp_path / "data")
    report = prepare_data_dir("folder", nested_corpus, out, prefix="vox")
    assert report.num_utterances == 8 and report.num_speakers == 4 and not report.dropped
    utt2spk = check_data_dir(out)
    assert "vox-aishellS0913-session1-00001" in utt2spk
    assert utt2spk["vox-aishellS0913-session1-00001"] == "vox-aishellS0913"
    wav_scp = read_kaldi_map(os.path.join(out, "wav.scp"))
    utt2dur = read_kaldi_map(os.path.join(out, "utt2dur"))
    for utt, path in wav_scp.items():
        assert os.path.isabs(path)
        assert abs(float(utt2dur[utt]) - soundfile.info(path).duration) < 1e-3
    assert not os.path.exists(os.path.join(out, "segments"))


def test_two_prefixed_corpora_do_not_collide(corpus_dir, tmp_path):
    a = prepare_data_dir("folder", corpus_dir, str(tmp_path / "a"), prefix="one")
    b = prepare_data_dir("folder", corpus_dir, str(tmp_path / "b"), prefix="two")
    utts_a = read_kaldi_map(os.path.join(a.data_dir, "utt2spk"))
    utts_b = read_kaldi_map(os.path.join(b.data_dir, "utt2spk"))
    assert len(utts_a) == len(utts_b) == 16 and not set(utts_a) & set(utts_b)
    assert not set(utts_a.values()) & set(utts_b.values())
    combine = os.path.join(REPO, "tools", "combine_data.sh")
    if os.path.isfile(combine):
        out = str(tmp_path / "both")
        proc = subprocess.run(["bash", combine, out, a.data_dir, b.data_dir], capture_output=True,
                              text=True, cwd=REPO)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert len(read_kaldi_map(os.path.join(out, "utt2spk"))) == 32


def test_folder_import_drops_unreadable_audio(corpus_dir, tmp_path):
    root = tmp_path / "corpus"
    shutil.copytree(corpus_dir, root)
    (root / "arctic-slt" / "broken.wav").write_bytes(b"not audio at all")
    report = prepare_data_dir("folder", str(root), str(tmp_path / "data"))
    assert report.num_utterances == 16
    assert len(report.dropped) == 1 and "broken.wav" in report.dropped[0][0]
    with pytest.raises(CorpusImportError, match="broken.wav"):
        prepare_data_dir("folder", str(root), str(tmp_path / "strict"), strict=True)


def test_folder_import_errors(tmp_path, corpus_dir):
    with pytest.raises(CorpusImportError, match="not a directory"):
        import_folder(str(tmp_path / "nothing"))
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(os.path.join(corpus_dir, "arctic-slt", sorted(os.listdir(os.path.join(corpus_dir, "arctic-slt")))[0]),
                flat / "a.wav")
    with pytest.raises(CorpusImportError, match="directly under"):
        import_folder(str(flat))


def test_csv_import_with_segments_and_data_root(corpus_dir, tmp_path):
    speaker = "vctk-p225"
    names = sorted(os.listdir(os.path.join(corpus_dir, speaker)))
    manifest = tmp_path / "train.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "duration", "wav", "start", "stop", "spk_id"])
        for i, name in enumerate(names[:2]):
            path = f"$data_root/{speaker}/{name}"
            writer.writerow([f"{name[:-4]}--a", 1.0, path, 8000, 24000, speaker])   # samples
            writer.writerow([f"{name[:-4]}--b", 1.5, path, 24000, 48000, speaker])
        writer.writerow(["other", 2.0, f"$data_root/arctic-slt/{sorted(os.listdir(os.path.join(corpus_dir, 'arctic-slt')))[0]}",
                         "", "", "arctic-slt"])
    out = str(tmp_path / "data")
    report = prepare_data_dir("csv", str(manifest), out, data_root=corpus_dir)
    assert report.num_utterances == 5 and report.has_segments
    utt2spk = check_data_dir(out)
    assert "arctic-slt-other" in utt2spk  # the id is made to start with the speaker
    segments = read_kaldi_map(os.path.join(out, "segments"))
    rec, start, end = segments[f"{names[0][:-4]}--b"].split()
    assert (float(start), float(end)) == (1.5, 3.0)
    assert len(read_kaldi_map(os.path.join(out, "wav.scp"))) == 3
    # The segment is what the pipeline reads.
    features = dict(EvalDataset(out, "raw", {"cmn": False}))
    from wespk.features.fbank import compute_fbank
    full, rate = soundfile.read(os.path.join(corpus_dir, speaker, names[0]), dtype="float32")
    assert features[f"{names[0][:-4]}--b"].shape == compute_fbank(full[24000:48000], rate).shape


def test_csv_errors_name_file_and_line(tmp_path):
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("ID,wav,speaker\nx,y.wav,z\n")
    with pytest.raises(DataFileError, match=r"bad.csv:1: header lacks column"):
        prepare_data_dir("csv", str(bad_header), str(tmp_path / "out"))
    bad_row = tmp_path / "row.csv"
    bad_row.write_text("ID,duration,wav,spk_id\na,1.0,a.wav,s\nb,long,b.wav,s\n")
    with pytest.raises(DataFileError, match=r"row.csv:3: duration must be a number"):
        prepare_data_dir("csv", str(bad_row), str(tmp_path / "out"))


def test_jsonl_import_whole_files_and_offsets(corpus_dir, tmp_path):
    manifest = tmp_path / "manifest.json"
    rows = []
    for speaker in ("arctic-slt", "aishell-S0913"):
        for name in sorted(os.listdir(os.path.join(corpus_dir, speaker)))[:2]:
            path = os.path.join(corpus_dir, speaker, name)
            rows.append({"audio_filepath": path, "duration": soundfile.info(path).duration, "label": speaker})
    first = rows[0]["audio_filepath"]
    rows.append({"audio_filepath": first, "offset": 0.5, "duration": 1.0, "label": "arctic-slt"})
    rows.append({"audio_filepath": first, "offset": 1.5, "duration": 1.0, "label": "arctic-slt"})
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = str(tmp_path / "data")
    report = prepare_data_dir("jsonl", str(manifest), out, prefix="nemo")
    assert report.num_utterances == 6 and report.has_segments
    utt2spk = check_data_dir(out)
    segments = read_kaldi_map(os.path.join(out, "segments"))
    pieces = [v.split() for k, v in segments.items() if k.endswith(("-00000500", "-00001500"))]
    assert sorted((float(s), float(e)) for _, s, e in pieces) == [(0.5, 1.5), (1.5, 2.5)]
    assert all(spk.startswith("nemo-") for spk in utt2spk.values())


def test_jsonl_errors(tmp_path):
    manifest = tmp_path / "m.json"
    manifest.write_text('{"audio_filepath": "a.wav", "duration": 1.0}\n')
    with pytest.raises(DataFileError, match=r"m.json:1: missing field\(s\) \['label'\]"):
        prepare_data_dir("jsonl", str(manifest), str(tmp_path / "out"))


def test_duplicate_ids_are_an_error(corpus_dir, tmp_path):
    manifest = tmp_path / "dup.csv"
    path = os.path.join(corpus_dir, "arctic-slt", sorted(os.listdir(os.path.join(corpus_dir, "arctic-slt")))[0])
    manifest.write_text(f"ID,duration,wav,spk_id\nu1,1.0,{path},s\nu1,1.0,{path},s\n")
    with pytest.raises(CorpusImportError, match="duplicate utterance id 's-u1'"):
        prepare_data_dir("csv", str(manifest), str(tmp_path / "out"))


def test_cli(corpus_dir, tmp_path, capsys):
    out = str(tmp_path / "data")
    assert prepare_main(["--layout", "folder", "--prefix", "dev", corpus_dir, out]) == 0
    assert len(read_kaldi_map(os.path.join(out, "utt2spk"))) == 16
    assert prepare_main(["--layout", "csv", str(tmp_path / "missing.csv"), out]) == 1
    # A re-import over the same dir replaces it (segments from before removed).
    (tmp_path / "data" / "segments").write_text("x rec 0 1\n")
    assert prepare_main(["--layout", "folder", corpus_dir, out]) == 0
    assert not os.path.exists(os.path.join(out, "segments"))
