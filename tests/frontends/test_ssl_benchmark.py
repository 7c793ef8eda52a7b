"""benchmarks/ssl.py runs and reports every contender (no timing asserts)."""

from benchmarks import ssl as ssl_benchmark


def test_ssl_benchmark_reports_every_contender(capsys):
    assert ssl_benchmark.main(["--size", "tiny", "--batch", "2", "--seconds", "0.5", "--repeats", "1",
                               "--no_memory", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|")[2:5] for line in out.splitlines()
            if line.startswith("| ") and "contender" not in line and "---" not in line}
    assert set(rows) == set(ssl_benchmark.CONTENDERS)
    assert all(float(seconds) > 0 for seconds, _, _ in rows.values())
    assert float(rows["plain joint"][1]) == 1.0 and rows["wespk joint"][2].strip() == "-"
    assert "load average" in out and "WavLM tiny" in out
