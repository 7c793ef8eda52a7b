"""wespk's benchmarks: one program per part, run from the repo root as
``python -m benchmarks.<part>``; see ``benchmarks/README.md``."""
