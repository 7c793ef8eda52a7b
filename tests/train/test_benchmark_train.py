"""The training benchmark: a tiny real run through both loops, and its arithmetic."""

import json
import math
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO
from benchmarks.train import (Measurement, format_table, median_rounds, time_trainer,
                                       trainer_steps_plan, trainer_throughput)

NUM_TRAIN_SPEAKERS = 89  # corpus/mini/train


def table_rows(report: str, model: str):
    """``{mode: row}`` of the report's markdown table for ``model``."""
    header = next(line for line in report.splitlines() if line.startswith("| model |"))
    names = [c.strip() for c in header.strip("|").split("|")]
    rows = {}
    for line in report.splitlines():
        if line.startswith(f"| {model} |"):
            row = dict(zip(names, (c.strip() for c in line.strip("|").split("|"))))
            rows[row["mode"]] = row
    return rows


def test_throughput_windows_after_the_first(tmp_path):
    # global batch 8; the first window (warm-up) is ignored whatever its rate
    records = [{"epoch": 1, "step": 2, "global_step": 2, "utt_per_s": 100.0},
               {"epoch": 1, "step": 4, "global_step": 4, "utt_per_s": 8.0},   # 16 utts in 2 s
               {"epoch": 1, "step": 5, "global_step": 5, "utt_per_s": 4.0},   # 8 utts in 2 s
               {"epoch": 2, "step": 2, "global_step": 7, "utt_per_s": 16.0}]  # 16 utts in 1 s
    path = tmp_path / "train_metrics.jsonl"
    # the order of the lines does not matter
    path.write_text("".join(json.dumps(r) + "\n" for r in reversed(records)))
    speed = trainer_throughput(str(path), global_batch=8)
    assert speed.steps == 5
    assert speed.seconds_per_step == pytest.approx(1.0)
    assert speed.utts_per_second == pytest.approx(8.0)
    # the steady figure leaves out the window that starts epoch 2: 3 steps in 4 s
    assert speed.steady_seconds_per_step == pytest.approx(4 / 3)


def test_trainer_steps_plan():
    assert trainer_steps_plan(steps=8, log_interval=2, num_epochs=2) == (5, 8)
    assert trainer_steps_plan(steps=2, log_interval=1, num_epochs=2) == (2, 3)
    with pytest.raises(ValueError):
        trainer_steps_plan(steps=1, log_interval=4, num_epochs=3)


def test_rounds_give_the_median_row():
    def row(mode, seconds, load):
        return Measurement("M", mode, "s", 8, seconds, 16 / seconds, load)

    rounds = [row("baseline eager", 1.0, 0.1), row("wespk 1 proc", 1.3, 0.2),
              row("baseline eager", 3.0, 0.3), row("wespk 1 proc", 0.9, 0.4),
              row("baseline eager", 2.0, 0.5), row("wespk 1 proc", 1.1, 0.6)]
    rows = median_rounds(rounds)
    assert [(m.mode, m.seconds_per_step, m.load_1min) for m in rows] == [
        ("baseline eager", 2.0, 0.5), ("wespk 1 proc", 1.1, 0.6)]
    assert rows[0].round_seconds_per_step == (1.0, 3.0, 2.0)
    assert rows[1].utts_per_second == pytest.approx(16 / 1.1)
    table = format_table(rows)
    assert table.splitlines()[0].endswith("| s/step of each round |")
    assert table.splitlines()[3] == ("| M | wespk 1 proc | s | 8 | 1.100 | 14.5 | 1.82 | - | 0.60 | "
                                     "1.300 0.900 1.100 |")
    # an even count takes the lower middle; one round adds no column
    assert median_rounds(rounds[:4])[0].seconds_per_step == 1.0
    assert "each round" not in format_table(median_rounds(rounds[:2]))


def test_tiny_benchmark_run(tmp_path):
    work_dir, report_path = tmp_path / "work", tmp_path / "report.md"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.train", "--models", "ResNet34",
         "--model_args", '{"m_channels": 4}', "--steps", "2", "--warmup_steps", "1", "--procs", "1",
         "--batch_size", "4", "--num_frms", "100", "--log_interval", "1", "--epochs", "2",
         "--cores", "1",  # one thread: less exposed to other jobs on the machine
         "--work_dir", str(work_dir), "--output_md", str(report_path)],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = report_path.read_text()
    assert report in proc.stdout
    assert "--model_args" in report and "load average" in report

    rows = table_rows(report, "ResNet34")
    assert list(rows) == ["baseline eager", "baseline eager, heap kept", "wespk step, batch in memory",
                          "wespk 1 proc", "data only"]
    # the trainer ran 2 epochs of 2 steps; the first log window (1 step) is warm-up
    assert [rows[m]["steps timed"] for m in rows] == ["2", "2", "2", "3", "3"]
    for mode, row in rows.items():
        s_per_step, utt_per_s = float(row["s/step"]), float(row["utt/s"])
        ratio, load = float(row["x baseline (utt/s)"]), float(row["load (1 min)"])
        assert s_per_step > 0 and utt_per_s > 0 and ratio > 0 and math.isfinite(load), (mode, row)
        # every step (or batch) carries the global batch of 4 utterances
        # (the table rounds s/step to 3 decimals and utt/s to 1: allow for that on fast data batches)
        rounding = 0.0005 / s_per_step + 0.05 / utt_per_s
        assert s_per_step * utt_per_s == pytest.approx(4, rel=0.02 + rounding), (mode, row)
    assert float(rows["baseline eager"]["x baseline (utt/s)"]) == 1.0
    # windows (1 step each): epoch 1 step 1 warm-up, step 2 steady, epoch 2 step 1 restart, step 2 steady
    assert float(rows["wespk 1 proc"]["steady s/step"]) > 0
    assert rows["baseline eager"]["steady s/step"] == rows["data only"]["steady s/step"] == "-"
    assert rows["baseline eager, heap kept"]["setting"] == rows["baseline eager"]["setting"]
    assert rows["baseline eager"]["setting"] == "1 process x batch 4, 1 thread, 1000 classes"
    assert rows["wespk step, batch in memory"]["setting"] == (f"1 process x batch 4, 1 thread, no workers, "
                                                              f"{3 * NUM_TRAIN_SPEAKERS} classes")
    assert rows["wespk 1 proc"]["setting"] == (f"1 process x batch 4, 1 thread, 1 worker, "
                                               f"{3 * NUM_TRAIN_SPEAKERS} classes")
    assert "the data pipeline alone delivers" in report and "CPU ms per utterance" in report
    assert "baseline head (1000 classes)" in report and f"({3 * NUM_TRAIN_SPEAKERS} classes)" in report

    # the trainer row came from the real entry point on the real list
    exp = work_dir / "exp" / "ResNet34_1proc"
    config = yaml.safe_load((exp / "config.yaml").read_text())
    assert config["num_class"] == 3 * NUM_TRAIN_SPEAKERS
    assert config["model_args"]["m_channels"] == 4 and config["dataset_args"]["speed_perturb"] is True
    assert config["dataset_args"]["sample_num_per_epoch"] == 2 * 4
    metrics = [json.loads(line) for line in (exp / "train_metrics.jsonl").read_text().splitlines()]
    assert [(m["epoch"], m["step"]) for m in metrics] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    raw_list = (work_dir / "data" / "train" / "raw.list").read_text().splitlines()
    assert len(raw_list) == 368

    # run again in the same work dir: a fresh experiment, not a resume of the finished one
    # (which would train nothing and leave the first run's metrics to be reported)
    first = {(m["epoch"], m["step"]): m["utt_per_s"] for m in metrics}
    again = time_trainer("ResNet34", 1, 1, str(work_dir), config["model_args"],
                         {"raw_list": config["train_data"], "utt2spk": config["train_label"]},
                         config["dataset_args"], 4, 1, 2, 1, config["seed"], timeout=300)
    assert "resumed from" not in (exp / "train.log").read_text()
    metrics = [json.loads(line) for line in (exp / "train_metrics.jsonl").read_text().splitlines()]
    assert [(m["epoch"], m["step"]) for m in metrics] == list(first)
    assert all(m["utt_per_s"] != first[m["epoch"], m["step"]] for m in metrics)
    assert again.steps == 3 and again.seconds_per_step > 0
