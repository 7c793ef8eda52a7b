"""python -m wespk.bin.enhance: ark/scp in and out, independent of the batch size, backbone refusal."""

import os
import subprocess
import sys

import numpy as np

from tests.conftest import REPO
from tests.enhance.helpers import EMBED_DIM, make_model_dir, perturbed_enhancer
from wespk.enhance.apply import enhance_embedding_file
from wespk.io.embeddings import read_embeddings, write_embeddings


def run_enhance(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "wespk.bin.enhance", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)


def test_enhance_cli(tmp_path, capsys):
    backbone = make_model_dir(tmp_path / "backbone", seed=0)
    other = make_model_dir(tmp_path / "other", seed=1)
    enhancer = perturbed_enhancer(backbone)
    enhancer.save(str(tmp_path / "enh"))
    keys = [f"spk{i % 3}-utt{i}" for i in range(9)]
    vectors = np.random.default_rng(0).standard_normal((9, EMBED_DIM)).astype(np.float32)
    in_scp = tmp_path / "in" / "xvector.scp"
    write_embeddings(tmp_path / "in" / "xvector.ark", in_scp, zip(keys, vectors))
    (tmp_path / "in" / "utt2dur").write_text("".join(f"{k} 2.0\n" for k in keys))

    proc = run_enhance("--enhancer", tmp_path / "enh", "--seed", 7, "--input", in_scp, "--output_dir",
                       tmp_path / "cli", "--backbone", backbone, "--steps", 2, "--t", 60)
    assert proc.returncode == 0, proc.stderr
    out_keys, cli = read_embeddings(tmp_path / "cli" / "xvector.scp")
    assert out_keys == keys
    np.testing.assert_allclose(cli, enhancer.enhance(keys, vectors, 7, t=60, steps=2), rtol=0, atol=1e-5)
    assert (tmp_path / "cli" / "utt2dur").read_text() == (tmp_path / "in" / "utt2dur").read_text()
    for batch in (1, 4):   # float32 values of size ~sqrt(D): 1e-5 is far below what scoring sees
        enhance_embedding_file(str(tmp_path / "enh"), str(in_scp), str(tmp_path / f"b{batch}"), 7, 60, 2, batch)
        np.testing.assert_allclose(read_embeddings(tmp_path / f"b{batch}" / "xvector.scp")[1], cli, rtol=0, atol=1e-5)

    from wespk.bin.enhance import main as enhance_main
    capsys.readouterr()
    assert enhance_main(["--enhancer", str(tmp_path / "enh"), "--seed", "7", "--input", str(in_scp),
                         "--output_dir", str(tmp_path / "refused"), "--backbone", str(other)]) == 1
    assert "the enhancer was trained for ResNet34 with model file sha256" in capsys.readouterr().err
    assert not (tmp_path / "refused" / "xvector.scp").exists()

    (tmp_path / "bad.scp").write_text("a b c\n")
    assert enhance_main(["--enhancer", str(tmp_path / "enh"), "--seed", "7", "--input", str(tmp_path / "bad.scp"),
                         "--output_dir", str(tmp_path / "bad")]) == 1
    assert "bad.scp:1" in capsys.readouterr().err
