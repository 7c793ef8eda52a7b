"""End to end with the converted GE2E model: short generated conversations, both VADs, and bad input
through wespk.bin.diarize and the wespk command (a message or an empty / one-speaker RTTM, no traceback)."""

import numpy as np
import pytest
import soundfile

from tests.conftest import CORPUS
from wespk.diarization.rttm import read_rttm, write_rttm
from wespk.diarization.simulation import ConversationSpec, load_speech, simulate_conversation

pytest.importorskip("pyannote.metrics")
SPEAKERS = ("libri-1235", "vctk-p228", "arctic-slt")


@pytest.fixture(scope="module")
def source_vad():
    from wespk.diarization.pipeline import resolve_vad_method
    from wespk.features.vad import VoiceActivityDetector
    return VoiceActivityDetector(resolve_vad_method("auto"))


@pytest.fixture(scope="module")
def ge2e_dir(tmp_path_factory):
    pytest.importorskip("resemblyzer")
    from wespk.bin.checkpoint_tool import main
    out = tmp_path_factory.mktemp("ge2e")
    assert main(["convert-resemblyzer", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def conversations(tmp_path_factory, source_vad):
    """Two conversations (2 and 3 speakers, 18-25 s) with their reference, and odd files beside them."""
    root = tmp_path_factory.mktemp("conv")
    speech = {s: [load_speech(str(p), source_vad) for p in sorted((CORPUS / "test" / s).glob("*.flac"))[:3]]
              for s in SPEAKERS}
    rng = np.random.default_rng(5)
    spec = ConversationSpec(min_turn=2.0, max_turn=4.0)
    wav_scp, turns = [], []
    for name, count in (("conv_a", 2), ("conv_b", 3)):
        samples, ref = simulate_conversation(speech, rng, name, spec, num_speakers=count, num_turns=2 * count)
        path = root / f"{name}.wav"
        soundfile.write(path, samples, 16000)
        wav_scp.append(f"{name} {path}\n")
        turns += ref
    (root / "wav.scp").write_text("".join(wav_scp))
    write_rttm(root / "rttm", turns)
    return root


def _diarize(args):
    from wespk.bin.diarize import main
    return main([str(a) for a in args])


def test_conversations_are_reproducible(source_vad):
    speech = {s: [load_speech(str(p), source_vad) for p in sorted((CORPUS / "test" / s).glob("*.flac"))[:1]]
              for s in SPEAKERS}
    a = simulate_conversation(speech, np.random.default_rng(3), "c", num_speakers=2, num_turns=3)
    b = simulate_conversation(speech, np.random.default_rng(3), "c", num_speakers=2, num_turns=3)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert len({t.speaker for t in a[1]}) == 2 and all(1.0 <= t.duration <= 8.0 for t in a[1])


@pytest.mark.parametrize("vad", ["silero", "energy"])
def test_diarizes_generated_conversations(ge2e_dir, conversations, tmp_path, vad):
    if vad == "silero":
        pytest.importorskip("silero_vad")
    out = tmp_path / vad
    assert _diarize(["--model_dir", ge2e_dir, "--data", conversations, "--out_dir", out, "--vad", vad,
                     "--ref_rttm", conversations / "rttm", "--plot"]) == 0
    import json
    scores = json.loads((out / "der.json").read_text())
    assert scores["recordings"]["ALL"]["der"] < 0.10, (out / "der.md").read_text()
    assert scores["speaker_count_accuracy"] == 1.0
    hyp = read_rttm(out / "rttm")
    assert sorted(hyp) == ["conv_a", "conv_b"]
    assert (out / "plots" / "conv_a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_gives_messages_not_tracebacks(ge2e_dir, tmp_path, capsys, source_vad):
    rate = 16000
    speech = load_speech(vad=source_vad, path=str(sorted((CORPUS / "test" / "libri-1235").glob("*.flac"))[0]))
    files = {
        "silence": np.zeros(3 * rate, dtype=np.float32),
        "short": speech[: int(0.3 * rate)],
        "one_speaker": np.concatenate([np.zeros(rate // 2, dtype=np.float32), speech]),
    }
    lines = []
    for name, samples in files.items():
        soundfile.write(tmp_path / f"{name}.wav", samples, rate)
        lines.append(f"{name} {tmp_path / f'{name}.wav'}\n")
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav file")
    lines.append(f"broken {tmp_path / 'broken.wav'}\n")
    (tmp_path / "wav.scp").write_text("".join(sorted(lines)))
    out = tmp_path / "out"
    assert _diarize(["--model_dir", ge2e_dir, "--data", tmp_path / "wav.scp", "--out_dir", out]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "broken" in err and "broken.wav" in err
    assert (out / "failed").read_text() == "broken\n"
    hyp = read_rttm(out / "rttm")
    assert "silence" not in hyp                                      # no speech: no turns
    assert {t.speaker for t in hyp["one_speaker"]} == {"spk00"}
    assert len({t.speaker for t in hyp.get("short", [])}) <= 1
    # a missing data dir is one line
    assert _diarize(["--model_dir", ge2e_dir, "--data", tmp_path / "nowhere", "--out_dir", out]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_wespk_command(ge2e_dir, conversations, tmp_path, capsys):
    from wespk.cli import main
    assert main(["diarize", "--model", str(ge2e_dir), str(conversations / "conv_a.wav")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out and all(line.startswith("SPEAKER conv_a 1 ") for line in out)
    assert len({line.split()[7] for line in out}) == 2
    silent = tmp_path / "quiet.wav"
    soundfile.write(silent, np.zeros(16000, dtype=np.float32), 16000)
    assert main(["diarize", "--model", str(ge2e_dir), str(silent), "-o", str(tmp_path / "q.rttm")]) == 0
    assert (tmp_path / "q.rttm").read_text() == "" and "no speech" in capsys.readouterr().err
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"garbage")
    assert main(["diarize", "--model", str(ge2e_dir), str(broken)]) == 1
    err = capsys.readouterr().err
    assert "broken.wav" in err and "Traceback" not in err
