"""Fixtures for the scoring tests: the golden WeSpeaker scoring run and a CLI runner.

The golden folder is ``<repo>/../shared/golden`` (override with the
``WESPK_GOLDEN`` environment variable); its ``scoring/`` part holds
WeSpeaker's own outputs on synthetic dim-64 embeddings (see its NOTES.md).
Its scp files hold ark paths relative to ``scoring/``, so
:func:`golden_embeddings` rewrites them with absolute paths.
"""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(os.environ.get("WESPK_GOLDEN", REPO.parent / "shared" / "golden"))


@pytest.fixture(scope="session")
def golden_scoring() -> Path:
    """``<golden>/scoring``, or skip when the golden data is not on this machine."""
    scoring = GOLDEN / "scoring"
    if not (scoring / "NOTES.md").is_file():
        pytest.skip(f"golden scoring references not found at {scoring} (set WESPK_GOLDEN to the golden folder)")
    return scoring


@pytest.fixture(scope="session")
def golden_embeddings(golden_scoring, tmp_path_factory) -> SimpleNamespace:
    """Copies of the golden scp files whose ark paths are absolute.

    Attributes: ``eval`` (120 utterances), ``cohort_utts`` (400 utterances),
    ``cohort`` (200 speaker means), each the Path of an scp.
    """
    out = tmp_path_factory.mktemp("golden_scp")
    paths = {}
    for name, relative in (("eval", "embeddings/eval/xvector.scp"),
                           ("cohort_utts", "embeddings/cohort/xvector.scp"),
                           ("cohort", "embeddings/cohort/spk_xvector.scp")):
        lines = []
        for line in (golden_scoring / relative).read_text().splitlines():
            key, location = line.split()
            lines.append(f"{key} {golden_scoring / location}\n")
        paths[name] = out / f"{name}.scp"
        paths[name].write_text("".join(lines))
    return SimpleNamespace(**paths)


def run_cli(module: str, *args, cwd=None, env=None) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args...`` as a recipe would; returns the completed process (text).

    ``env`` adds variables to the environment (thread counts, for example).
    """
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", module, *[str(a) for a in args]], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def read_columns(path, *columns):
    """Whitespace-split columns of a text file: ``read_columns(p, 2)`` -> list of strings of column 2."""
    rows = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    return [[row[c] for row in rows] for c in columns] if len(columns) > 1 else [row[columns[0]] for row in rows]
