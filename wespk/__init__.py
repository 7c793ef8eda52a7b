"""wespk: a speaker-embedding toolkit in the Kaldi tradition."""

__version__ = "0.1.0"
from wespk.api import EmbedderConfig, SpeakerEmbedder, SpeakerManager, load_model  # noqa: E402,F401
