"""The model_stats and benchmark_models commands (no timing asserts)."""

from benchmarks import models as benchmark_models
from wespk.bin import model_stats


def test_model_stats_prints_a_markdown_row_per_model(capsys):
    assert model_stats.main(
        ['--models', 'XVEC,ECAPA_TDNN_GLOB_c512', '--seconds', '2']) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith('| model | embed_dim | params (M) |')
    rows = {line.split('|')[1].strip(): line.split('|')[2:5]
            for line in lines[2:]}
    assert set(rows) == {'XVEC', 'ECAPA_TDNN_GLOB_c512'}
    # WeSpeaker's published sizes: x-vector 4.61 M parameters; ECAPA-TDNN
    # GLOB c512 6.19 M parameters and 1.04 G multiply-adds for 2 s
    assert [float(v) for v in rows['XVEC'][1:]] == [4.61, 1.06]
    assert [float(v) for v in rows['ECAPA_TDNN_GLOB_c512'][1:]] == [6.19, 2.07]


def test_model_stats_rejects_unknown_models(capsys):
    assert model_stats.main(['--models', 'ResNet35']) == 1
    assert 'ResNet34' in capsys.readouterr().err


def test_round_robin_timing_calls_each_run_in_turns_reversing_every_other_round():
    calls = []
    runs = {name: (lambda name=name: calls.append(name)) for name in 'abc'}
    seconds = benchmark_models.round_robin_seconds(runs, {'a': 2}, repeats=3)
    assert calls == ['a', 'a'] + ['a', 'b', 'c'] + ['c', 'b', 'a'] + ['a', 'b', 'c']
    assert set(seconds) == {'a', 'b', 'c'}
    assert all(value >= 0 for value in seconds.values())
