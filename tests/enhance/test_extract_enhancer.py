"""Extraction with --enhancer: the same vectors for --nj 1 and --nj 2, equal to enhancing afterwards."""

import os
import subprocess
import sys

import numpy as np

from tests.conftest import CORPUS, REPO
from tests.enhance.helpers import make_model_dir, perturbed_enhancer
from wespk.io.embeddings import read_embeddings


def run(module, *args):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)


def test_extract_with_enhancer(tmp_path):
    model = make_model_dir(tmp_path / "model")
    other = make_model_dir(tmp_path / "other", seed=3)
    enhancer = perturbed_enhancer(model)
    enhancer.save(str(tmp_path / "enh"))
    files = sorted(CORPUS.glob("test/*/*.flac"))[:7]
    (tmp_path / "wav.scp").write_text("".join(f"{p.stem} {p}\n" for p in files))
    outs = {}
    for nj in (1, 2):
        proc = run("wespk.bin.extract", "--model_dir", model, "--data", tmp_path / "wav.scp", "--out_dir",
                   tmp_path / f"nj{nj}", "--nj", nj, "--batch_size", 3, "--enhancer", tmp_path / "enh",
                   "--enhance_seed", 4)
        assert proc.returncode == 0, proc.stderr
        outs[nj] = read_embeddings(tmp_path / f"nj{nj}" / "xvector.scp")
    assert outs[1][0] == outs[2][0] == [p.stem for p in files]
    np.testing.assert_allclose(outs[1][1], outs[2][1], rtol=0, atol=1e-5)
    plain = run("wespk.bin.extract", "--model_dir", model, "--data", tmp_path / "wav.scp", "--out_dir",
                tmp_path / "plain", "--batch_size", 5)
    assert plain.returncode == 0, plain.stderr
    keys, raw = read_embeddings(tmp_path / "plain" / "xvector.scp")
    np.testing.assert_allclose(enhancer.enhance(keys, raw, 4), outs[1][1], rtol=0, atol=1e-4)
    refused = run("wespk.bin.extract", "--model_dir", other, "--data", tmp_path / "wav.scp", "--out_dir",
                  tmp_path / "refused", "--enhancer", tmp_path / "enh")
    assert refused.returncode == 1 and "the enhancer was trained for ResNet34" in refused.stderr


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
