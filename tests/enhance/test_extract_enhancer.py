"""Extraction with --enhancer: the same vectors for --nj 1 and --nj 2, equal to enhancing afterwards."""

import numpy as np

from tests.conftest import CORPUS
from tests.enhance.helpers import make_model_dir, perturbed_enhancer
from wespk.io.embeddings import read_embeddings


def test_extract_with_enhancer(tmp_path, capsys):
    model = make_model_dir(tmp_path / "model")
    other = make_model_dir(tmp_path / "other", seed=3)
    enhancer = perturbed_enhancer(model)
    enhancer.save(str(tmp_path / "enh"))
    files = sorted(CORPUS.glob("test/*/*.flac"))[:7]
    (tmp_path / "wav.scp").write_text("".join(f"{p.stem} {p}\n" for p in files))
    from wespk.bin.extract import main as extract_main
    outs = {}
    for nj in (1, 2):   # --nj 2 runs its jobs in spawned processes
        assert extract_main(["--model_dir", str(model), "--data", str(tmp_path / "wav.scp"), "--out_dir",
                             str(tmp_path / f"nj{nj}"), "--nj", str(nj), "--batch_size", "3",
                             "--enhancer", str(tmp_path / "enh"), "--enhance_seed", "4"]) == 0
        outs[nj] = read_embeddings(tmp_path / f"nj{nj}" / "xvector.scp")
    assert outs[1][0] == outs[2][0] == [p.stem for p in files]
    np.testing.assert_allclose(outs[1][1], outs[2][1], rtol=0, atol=1e-5)
    from wespk.inference.extractor import extract_embeddings
    extract_embeddings(str(tmp_path / "wav.scp"), str(model), str(tmp_path / "plain"), batch_size=5)
    keys, raw = read_embeddings(tmp_path / "plain" / "xvector.scp")
    np.testing.assert_allclose(enhancer.enhance(keys, raw, 4), outs[1][1], rtol=0, atol=1e-4)
    capsys.readouterr()
    assert extract_main(["--model_dir", str(other), "--data", str(tmp_path / "wav.scp"), "--out_dir",
                         str(tmp_path / "refused"), "--enhancer", str(tmp_path / "enh")]) == 1
    assert "the enhancer was trained for ResNet34" in capsys.readouterr().err
    assert not (tmp_path / "refused" / "xvector.scp").exists()

def test_load_model_with_enhancer(tmp_path):
    import wespk
    from wespk.enhance.enhancer import EnhancerError, content_key
    model = make_model_dir(tmp_path / "model")
    enhancer = perturbed_enhancer(model)
    enhancer.save(str(tmp_path / "enh"))
    files = [str(p) for p in sorted(CORPUS.glob("test/*/*.flac"))[:3]]
    plain = wespk.load_model(str(model))
    enhanced = wespk.load_model(str(model), enhancer=str(tmp_path / "enh"), enhance_seed=2)
    batch = enhanced.embed_batch(files)
    np.testing.assert_allclose(enhanced.embed(files[1]), batch[1], rtol=0, atol=1e-5)
    keys = [content_key(plain.features(f)) for f in files]
    np.testing.assert_allclose(enhancer.enhance(keys, plain.embed_batch(files), 2), batch, rtol=0, atol=1e-4)
    assert np.abs(batch - plain.embed_batch(files)).max() > 1e-3
    other = make_model_dir(tmp_path / "other", seed=5)
    import pytest
    with pytest.raises(EnhancerError, match="the enhancer was trained for ResNet34"):
        wespk.load_model(str(other), enhancer=str(tmp_path / "enh"))
