"""benchmarks/ssl.py runs and reports every contender (no timing asserts)."""

from benchmarks import ssl as ssl_benchmark


def test_ssl_benchmark_reports_every_contender(capsys):
    assert ssl_benchmark.main(["--size", "tiny", "--batch", "2", "--seconds", "0.5", "--repeats", "1",
                               "--no_memory", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|")[2:6] for line in out.splitlines()
            if line.startswith("| ") and "contender" not in line and "---" not in line}
    assert set(rows) == set(ssl_benchmark.CONTENDERS)
    assert all(float(seconds) > 0 for seconds, _, _, _ in rows.values())
    assert float(rows["plain joint"][1]) == 1.0 and rows["plain joint"][2].strip() == ""
    # one round: the paired ratio is that round's, its range a single value
    low, high = (float(x) for x in rows["wespk joint"][2].split(" - "))
    assert low == high == float(rows["wespk joint"][1]) > 0
    assert rows["wespk joint"][3].strip() == "-"
    assert "load average" in out and "WavLM tiny" in out
