"""The EER comparison tool, on a few real test utterances (wespk system only)."""

import pytest

from tests.conftest import CORPUS
from wespk.pretrained.compare_resemblyzer import compare, main
from wespk.pretrained.resemblyzer import convert_resemblyzer


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory, synthetic_resemblyzer_checkpoint):
    root = tmp_path_factory.mktemp("compare")
    model_dir = root / "model"
    convert_resemblyzer(str(model_dir), str(synthetic_resemblyzer_checkpoint))
    utts = {}
    for speaker in ("arctic-slt", "vctk-p227", "cvfa-00243bfe65"):
        for path in sorted((CORPUS / "test" / speaker).glob("*.flac"))[:2]:
            utts[path.stem] = speaker
    ids = sorted(utts)
    trials = root / "trials"
    lines = [f"{a} {b} {'target' if utts[a] == utts[b] else 'nontarget'}\n"
             for i, a in enumerate(ids) for b in ids[i + 1:]]
    trials.write_text("".join(lines))
    return model_dir, trials, len(lines)


def test_compare_scores_every_trial(tiny_setup, tmp_path):
    model_dir, trials, num_trials = tiny_setup
    results = compare(str(model_dir), str(CORPUS / "test"), str(trials), with_resemblyzer=False,
                      scores_dir=str(tmp_path))
    assert set(results) == {"wespk", "_info"}
    assert results["_info"]["trials"] == num_trials == 15 and results["_info"]["targets"] == 3
    assert 0.0 <= results["wespk"]["eer_percent"] <= 100.0
    lines = (tmp_path / "wespk.score").read_text().splitlines()
    assert len(lines) == 15 and all(len(line.split()) == 4 for line in lines)
    assert all(-1.0 <= float(line.split()[2]) <= 1.0 for line in lines)


def test_missing_audio_is_a_one_line_error(tiny_setup, tmp_path, capsys):
    model_dir, trials, _ = tiny_setup
    assert main(["--model", str(model_dir), "--audio-dir", str(tmp_path), "--trials", str(trials)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"compare_resemblyzer: error: {tmp_path}: no audio for 6 trial utterance(s)")
