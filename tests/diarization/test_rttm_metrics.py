"""RTTM round trips through pyannote, and DER / JER against hand-computed values."""

import pytest

from wespk.diarization.metrics import format_score_table, score_recordings
from wespk.diarization.rttm import Turn, read_rttm, write_rttm
from wespk.io.files import DataFileError

pytest.importorskip("pyannote.metrics")


def _turns(rec, *spans):
    return [Turn(rec, s, e, spk) for s, e, spk in spans]


def test_rttm_is_read_back_by_pyannote(tmp_path):
    from pyannote.database.util import load_rttm
    turns = _turns("rec1", (0.5, 2.25, "A"), (2.25, 4.0, "B"), (3.5, 5.125, "A")) + _turns("rec2", (1.0, 2.0, "C"))
    path = tmp_path / "rttm"
    assert write_rttm(path, turns) == 4
    loaded = load_rttm(str(path))
    assert sorted(loaded) == ["rec1", "rec2"]
    got = sorted((seg.start, seg.end, label) for seg, _, label in loaded["rec1"].itertracks(yield_label=True))
    # RTTM keeps milliseconds
    assert [(round(s, 3), round(e, 3), lab) for s, e, lab in got] == [(0.5, 2.25, "A"), (2.25, 4.0, "B"),
                                                                     (3.5, 5.125, "A")]
    assert read_rttm(path)["rec1"] == sorted(turns[:3], key=lambda t: (t.start, t.end))
    for line in path.read_text().splitlines():
        assert len(line.split()) == 10 and line.startswith("SPEAKER ")


def test_bad_rttm_line_names_file_and_line(tmp_path):
    path = tmp_path / "rttm"
    path.write_text("SPEAKER r 1 0.0 1.0 <NA> <NA> A <NA> <NA>\nSPEAKER r 1 zero 1.0 <NA> <NA> A <NA> <NA>\n")
    with pytest.raises(DataFileError, match=r"rttm:2: onset 'zero'"):
        read_rttm(path)


def _total(reference, hypothesis, **kw):
    return score_recordings(reference, hypothesis, **kw)[-1]


def test_der_components_without_collar():
    ref = {"r": _turns("r", (0, 10, "A"), (10, 20, "B"))}
    # 1 s of B labelled A (confusion), 1 s of speech missed, 2 s of silence called speech
    hyp = {"r": _turns("r", (0, 11, "x"), (11, 19, "y"), (20, 22, "y"))}
    s = _total(ref, hyp, collar=0.0)
    assert s.total == pytest.approx(20.0)
    assert s.confusion == pytest.approx(1.0)
    assert s.missed == pytest.approx(1.0)
    assert s.false_alarm == pytest.approx(2.0)
    assert s.der == pytest.approx(4.0 / 20.0)


def test_collar_is_seconds_each_side_of_reference_boundaries():
    ref = {"r": _turns("r", (0, 10, "A"), (10, 20, "B"))}
    hyp = {"r": _turns("r", (0, 11, "x"), (11, 20, "y"))}
    # boundaries at 0, 10, 20; a 0.25 s collar removes 0.25 + 0.5 + 0.25 s; 0.75 s of confusion is left
    s = _total(ref, hyp, collar=0.25)
    assert s.total == pytest.approx(19.0)
    assert s.confusion == pytest.approx(0.75)
    # an error entirely inside the collar costs nothing
    inside = {"r": _turns("r", (0, 10.2, "x"), (10.2, 20, "y"))}
    assert _total(ref, inside, collar=0.25).der == pytest.approx(0.0)
    assert _total(ref, inside, collar=0.0).der == pytest.approx(0.2 / 20)


def test_overlap_counts_every_reference_speaker():
    # A and B overlap for 5 s; the hypothesis has one speaker throughout
    ref = {"r": _turns("r", (0, 10, "A"), (5, 15, "B"))}
    hyp = {"r": _turns("r", (0, 15, "x"))}
    s = _total(ref, hyp, collar=0.0)
    assert s.total == pytest.approx(20.0)          # the overlap counts twice
    assert s.missed == pytest.approx(5.0)          # one of the two overlapping speakers is missed
    assert s.confusion == pytest.approx(5.0)       # x is A; B alone (10-15 s) is confused
    assert s.der == pytest.approx(0.5)
    skipped = _total(ref, hyp, collar=0.0, skip_overlap=True)
    assert skipped.total == pytest.approx(10.0) and skipped.confusion == pytest.approx(5.0)
    # the hypothesis with both speakers in the overlap is perfect
    both = {"r": _turns("r", (0, 10, "x"), (5, 15, "y"))}
    assert _total(ref, both, collar=0.0).der == pytest.approx(0.0)


def test_matches_the_library_called_directly():
    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate
    from wespk.diarization.rttm import turns_to_annotation
    ref_turns = _turns("r", (0.3, 4.1, "A"), (3.8, 7.2, "B"), (7.9, 12.0, "A"), (12.0, 13.3, "C"))
    hyp_turns = _turns("r", (0.0, 3.9, "1"), (3.9, 8.1, "2"), (8.1, 11.2, "1"), (11.2, 14.0, "2"))
    ours = score_recordings({"r": ref_turns}, {"r": hyp_turns}, collar=0.25)
    from pyannote.core import Segment, Timeline
    uem = Timeline([Segment(0, 14.0)])
    ref, hyp = turns_to_annotation(ref_turns), turns_to_annotation(hyp_turns)
    der = DiarizationErrorRate(collar=0.5)(ref, hyp, uem=uem)
    jer = JaccardErrorRate(collar=0.5)(ref, hyp, uem=uem)
    assert ours[0].der == pytest.approx(der, abs=1e-9)
    assert ours[0].jer == pytest.approx(jer, abs=1e-9)
    assert 0.05 < ours[0].der < 0.6


def test_recording_without_hypothesis_is_all_missed():
    ref = {"a": _turns("a", (0, 5, "A")), "b": _turns("b", (0, 5, "B"))}
    hyp = {"a": _turns("a", (0, 5, "s"))}
    scores = score_recordings(ref, hyp, collar=0.0)
    assert [s.recording for s in scores] == ["a", "b", "ALL"]
    assert scores[1].missed == pytest.approx(5.0) and scores[-1].der == pytest.approx(0.5)
    table = format_score_table(scores, 0.0)
    assert "| b | 1/0 | 5.00 | 100.00 | 100.00 |" in table
