"""tools/parse_options.sh, sourced by a recipe-like script under set -euo pipefail."""

import subprocess
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"

CALLER = """#!/usr/bin/env bash
# A recipe-like caller of parse_options.sh.
#
# It prints its variables.
set -euo pipefail

# Configuration section.
stage=0
stop_stage=10
use_gpu=false
data_dir=data
{help_line}
. {tools}/parse_options.sh

echo "stage=$stage stop_stage=$stop_stage use_gpu=$use_gpu data_dir=$data_dir"
echo "args=$#:$*"
"""


def write_caller(tmp_path, help_message=True):
    help_line = 'help_message="Usage: caller.sh [options] <arg>"' if help_message else ""
    script = tmp_path / "caller.sh"
    script.write_text(CALLER.format(help_line=help_line, tools=TOOLS))
    return script


def run_caller(script, *args):
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                          cwd=script.parent, check=False)


@pytest.mark.parametrize("args", [
    ["--stop-stage", "3"], ["--stop_stage", "3"], ["--stop-stage=3"], ["--stop_stage=3"],
])
def test_both_spellings_and_both_forms(tmp_path, args):
    result = run_caller(write_caller(tmp_path), *args, "positional")
    assert result.returncode == 0, result.stderr
    assert "stage=0 stop_stage=3 use_gpu=false data_dir=data" in result.stdout
    assert "args=1:positional" in result.stdout


def test_several_options_then_positional_args_are_left(tmp_path):
    result = run_caller(write_caller(tmp_path), "--stage", "2", "--use-gpu=true", "--data_dir", "x y",
                        "a", "--not-an-option-any-more", "b")
    assert result.returncode == 0, result.stderr
    assert "stage=2 stop_stage=10 use_gpu=true data_dir=x y" in result.stdout
    assert "args=3:a --not-an-option-any-more b" in result.stdout


def test_no_arguments_under_set_u(tmp_path):
    result = run_caller(write_caller(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "args=0:" in result.stdout


def test_double_dash_ends_options(tmp_path):
    result = run_caller(write_caller(tmp_path), "--stage", "1", "--", "--stage")
    assert result.returncode == 0, result.stderr
    assert "stage=1 " in result.stdout
    assert "args=1:--stage" in result.stdout


def test_value_is_taken_literally(tmp_path):
    result = run_caller(write_caller(tmp_path), "--data-dir", "$(touch injected); x")
    assert result.returncode == 0, result.stderr
    assert "data_dir=$(touch injected); x" in result.stdout
    assert not (tmp_path / "injected").exists()


def test_unknown_option_is_an_error_naming_it(tmp_path):
    result = run_caller(write_caller(tmp_path), "--nj", "4")
    assert result.returncode != 0
    assert "--nj" in result.stderr
    assert "stage=" not in result.stdout


def test_boolean_option_takes_only_true_or_false(tmp_path):
    result = run_caller(write_caller(tmp_path), "--use-gpu", "yes")
    assert result.returncode != 0
    assert "--use-gpu" in result.stderr and "true or false" in result.stderr


def test_missing_value_is_an_error(tmp_path):
    result = run_caller(write_caller(tmp_path), "--stage")
    assert result.returncode != 0
    assert "--stage" in result.stderr and "needs a value" in result.stderr


def test_help_prints_help_message(tmp_path):
    result = run_caller(write_caller(tmp_path), "--help")
    assert result.returncode == 0
    assert result.stdout.strip() == "Usage: caller.sh [options] <arg>"


def test_help_without_help_message_prints_header_comment(tmp_path):
    result = run_caller(write_caller(tmp_path, help_message=False), "-h")
    assert result.returncode == 0
    assert result.stdout.splitlines()[:3] == [
        "A recipe-like caller of parse_options.sh.", "", "It prints its variables."]


def test_config_file_is_sourced(tmp_path):
    config = tmp_path / "my.conf"
    config.write_text("stage=5\nstop_stage=6\n")
    result = run_caller(write_caller(tmp_path), "--config", str(config), "--stop-stage", "7")
    assert result.returncode == 0, result.stderr
    assert "stage=5 stop_stage=7 " in result.stdout
