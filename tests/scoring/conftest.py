"""Fixtures for the scoring tests: the golden WeSpeaker scoring references and a CLI runner.

``tests/golden/scoring`` (committed) holds a subset of WeSpeaker's own scoring
outputs on synthetic dim-64 embeddings: the complete embeddings and the first
200 lines of every trial, score and factor file (see its README.md); the
checks that need the complete 2,000-line lists use the full golden folder
``<repo>/../shared/golden`` (override with the ``WESPK_GOLDEN`` environment
variable): they skip without it, except under ``CI=true``, where a missing
folder is a failure. The scp files hold ark paths relative to ``scoring/``,
so :func:`golden_embeddings` rewrites them with absolute paths.
"""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(os.environ.get("WESPK_GOLDEN", REPO.parent / "shared" / "golden"))
COMMITTED_SCORING = REPO / "tests" / "golden" / "scoring"


@pytest.fixture(scope="session")
def golden_scoring() -> Path:
    """The committed scoring references (``tests/golden/scoring``), present in every clone."""
    assert (COMMITTED_SCORING / "README.md").is_file(), f"{COMMITTED_SCORING} is missing from the clone"
    return COMMITTED_SCORING


@pytest.fixture(scope="session")
def golden_scoring_full() -> Path:
    """``<golden>/scoring`` with the complete lists; skip without it, fail under ``CI=true``."""
    scoring = GOLDEN / "scoring"
    if not (scoring / "NOTES.md").is_file():
        message = f"full golden scoring references not found at {scoring} (set WESPK_GOLDEN to the golden folder)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
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
