import os

import kaldiio
import numpy as np
import pytest

from wespk.io.audio import AudioError, audio_duration, load_audio, ref_from_wav_scp_value
from wespk.io.embeddings import read_embeddings, write_embeddings
from wespk.io.trials import read_trials
from wespk.io.files import (DataFileError, atomic_output, read_kaldi_map,
                            utt2spk_to_spk2utt, write_kaldi_map)
from tests.conftest import corpus_files


def test_kaldi_map_round_trip_sorted(tmp_path):
    path = tmp_path / "utt2spk"
    write_kaldi_map(path, {"b_2": "b", "a_1": "a", "B_3": "B"})
    assert path.read_text() == "B_3 B\na_1 a\nb_2 b\n"  # C-locale order
    assert list(read_kaldi_map(path)) == ["B_3", "a_1", "b_2"]


def test_duplicate_key_names_both_lines(tmp_path):
    path = tmp_path / "wav.scp"
    path.write_text("u1 /a.wav\nu2 /b.wav\nu1 /c.wav\n")
    with pytest.raises(DataFileError, match=r"wav.scp:3: duplicate key 'u1' \(first on line 1\)"):
        read_kaldi_map(path)
    assert read_kaldi_map(path, allow_duplicates=True)["u1"] == "/a.wav"


def test_malformed_line_and_trials(tmp_path):
    path = tmp_path / "utt2spk"
    path.write_text("u1 s1\nu2\n")
    with pytest.raises(DataFileError, match="utt2spk:2: expected 'key value'"):
        read_kaldi_map(path)
    trials = tmp_path / "trials"
    trials.write_text("a b target\nc d maybe\n")
    with pytest.raises(DataFileError, match="trials:2: label must be"):
        read_trials(trials)


def test_spk2utt_inversion():
    spk2utt = utt2spk_to_spk2utt({"s2_b": "s2", "s1_a": "s1", "s2_a": "s2"})
    assert spk2utt == {"s1": ["s1_a"], "s2": ["s2_a", "s2_b"]}


def test_atomic_output_keeps_old_content_on_failure(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_output(path) as f:
            f.write("new partial")
            raise RuntimeError("killed")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["x.txt"]


def test_embeddings_round_trip_readable_by_kaldiio(tmp_path):
    rng = np.random.default_rng(0)
    items = [(f"utt{i}", rng.standard_normal(16).astype(np.float32)) for i in range(5)]
    n = write_embeddings(tmp_path / "xvector.ark", tmp_path / "xvector.scp", items)
    assert n == 5
    keys, mat = read_embeddings(tmp_path / "xvector.scp")
    assert keys == [k for k, _ in items]
    np.testing.assert_array_equal(mat, np.stack([v for _, v in items]))
    loaded = kaldiio.load_scp(str(tmp_path / "xvector.scp"))
    np.testing.assert_array_equal(loaded["utt3"], items[3][1])


def test_embeddings_reject_nan(tmp_path):
    with pytest.raises(ValueError, match="utt1.*NaN"):
        write_embeddings(tmp_path / "x.ark", tmp_path / "x.scp",
                         [("utt1", np.array([1.0, np.nan], dtype=np.float32))])
    assert not (tmp_path / "x.ark").exists()


def test_load_audio_span_and_errors(tmp_path):
    (_, _, flac), = corpus_files(speakers=1, per_speaker=1)
    full, sr = load_audio(str(flac))
    part, _ = load_audio(str(flac), start=0.5, end=1.0)
    assert sr == 16000 and part.shape == (8000,)
    np.testing.assert_array_equal(part, full[8000:16000])
    piped, _ = load_audio(ref_from_wav_scp_value(f"cat {flac} |"))
    np.testing.assert_array_equal(piped, full)
    piped_part, _ = load_audio(ref_from_wav_scp_value(f"cat {flac} |", start=0.5, end=1.0))
    np.testing.assert_array_equal(piped_part, part)
    with pytest.raises(AudioError, match="nope.wav: file not found"):
        load_audio(str(tmp_path / "nope.wav"))
    text = tmp_path / "text.wav"
    text.write_text("not audio")
    with pytest.raises(AudioError, match="text.wav: cannot decode"):
        load_audio(str(text))
    with pytest.raises(AudioError, match="failed"):
        load_audio(ref_from_wav_scp_value("false |"))


def test_a_path_string_never_runs_a_command(tmp_path):
    # only wav.scp or list entries (an AudioRef) run commands; a string is a file name
    marker = tmp_path / "ran"
    with pytest.raises(AudioError, match=r"file not found \(a command runs only from a wav.scp"):
        load_audio(f"touch {marker} |")
    with pytest.raises(AudioError, match="file not found"):
        audio_duration(f"touch {marker} |")
    assert not marker.exists()


def test_embeddings_bad_offset_names_line(tmp_path):
    write_embeddings(tmp_path / "x.ark", tmp_path / "x.scp", [("a", np.ones(4, np.float32))])
    ark = tmp_path / "x.ark"
    (tmp_path / "bad.scp").write_text(f"a {ark}:{ark.stat().st_size + 3}\n")
    with pytest.raises(DataFileError, match=r"bad.scp:1: cannot read"):
        read_embeddings(tmp_path / "bad.scp")


def test_atomic_output_has_umask_mode(tmp_path):
    with atomic_output(tmp_path / "f.txt") as f:
        f.write("x")
    mode = (tmp_path / "f.txt").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def _kaldiio_reference(scp):
    """What kaldiio itself reads for each key of ``scp``, in file order."""
    return [np.asarray(v, dtype=np.float32) for _, v in kaldiio.load_scp_sequential(str(scp))]


def test_embeddings_subset_reordered_and_across_arks(tmp_path):
    rng = np.random.default_rng(1)
    write_embeddings(tmp_path / "a.ark", tmp_path / "a.scp",
                     [(f"a{i}", rng.standard_normal(8).astype(np.float32)) for i in range(50)])
    write_embeddings(tmp_path / "b.ark", tmp_path / "b.scp",
                     [(f"longer_key_b{i}", rng.standard_normal(8).astype(np.float32)) for i in range(7)])
    a_lines = (tmp_path / "a.scp").read_text().splitlines()
    b_lines = (tmp_path / "b.scp").read_text().splitlines()
    # a few entries of a, out of order, interleaved with b, with a blank line
    lines = [a_lines[40], b_lines[3], "", a_lines[2], a_lines[2].replace("a2 ", "copy_of_a2 "), b_lines[0], a_lines[49]]
    scp = tmp_path / "mixed.scp"
    scp.write_text("\n".join(lines) + "\n")
    keys, matrix = read_embeddings(scp)
    assert keys == ["a40", "longer_key_b3", "a2", "copy_of_a2", "longer_key_b0", "a49"]
    no_blank = tmp_path / "no_blank.scp"
    no_blank.write_text("\n".join(line for line in lines if line) + "\n")
    np.testing.assert_array_equal(matrix, np.stack(_kaldiio_reference(no_blank)))
    assert matrix.dtype == np.float32 and matrix.flags.c_contiguous


def test_embeddings_double_vectors_and_kaldi_text_ark(tmp_path):
    # Kaldi's ivector tools write double vectors; those entries take the kaldiio path
    rng = np.random.default_rng(2)
    vectors = {f"u{i}": rng.standard_normal(6) for i in range(4)}
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path / 'd.ark'},{tmp_path / 'd.scp'}") as writer:
        for key, vec in vectors.items():
            writer(key, vec.astype(np.float64))
    write_embeddings(tmp_path / "f.ark", tmp_path / "f.scp", [("f0", np.arange(6, dtype=np.float32))])
    scp = tmp_path / "both.scp"
    scp.write_text((tmp_path / "f.scp").read_text() + (tmp_path / "d.scp").read_text())
    keys, matrix = read_embeddings(scp)
    assert keys == ["f0", "u0", "u1", "u2", "u3"]
    np.testing.assert_array_equal(matrix[0], np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal(matrix[1:], np.stack([vectors[f"u{i}"] for i in range(4)]).astype(np.float32))


def test_embeddings_dimension_mismatch_names_line(tmp_path):
    write_embeddings(tmp_path / "a.ark", tmp_path / "a.scp", [("a", np.ones(4, np.float32))])
    write_embeddings(tmp_path / "b.ark", tmp_path / "b.scp",
                     [("b", np.ones(4, np.float32)), ("c", np.ones(5, np.float32))])
    scp = tmp_path / "x.scp"
    scp.write_text((tmp_path / "a.scp").read_text() + (tmp_path / "b.scp").read_text())
    with pytest.raises(DataFileError, match=r"x.scp:3: dimension 5 differs from the first vector's 4"):
        read_embeddings(scp)


def test_embeddings_truncated_ark_names_line(tmp_path):
    write_embeddings(tmp_path / "x.ark", tmp_path / "x.scp",
                     [(f"u{i}", np.full(16, i, np.float32)) for i in range(3)])
    ark = tmp_path / "x.ark"
    ark.write_bytes(ark.read_bytes()[:-10])  # the last vector loses its tail
    with pytest.raises(DataFileError, match=r"x.scp:3: cannot read"):
        read_embeddings(tmp_path / "x.scp")
    (tmp_path / "missing.scp").write_text(f"u0 {tmp_path / 'nowhere.ark'}:3\n")
    with pytest.raises(DataFileError, match=r"missing.scp:1: cannot read"):
        read_embeddings(tmp_path / "missing.scp")
