"""wespk: a speaker-embedding toolkit in the Kaldi tradition."""

__version__ = "0.1.0"
