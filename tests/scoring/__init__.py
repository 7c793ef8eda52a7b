"""Tests of the scoring back end (wespk.scoring and its entry points)."""
