"""wespk: a speaker-embedding toolkit in the Kaldi tradition."""

__version__ = "0.1.0"

#: Names re-exported from :mod:`wespk.api`, imported on first use: ``python -m wespk.bin.<stage>`` imports
#: this package first, and a scoring stage must not pay for the model, audio and torch imports of the API.
_API_NAMES = ("EmbedderConfig", "SpeakerEmbedder", "SpeakerManager", "load_model")
__all__ = ["__version__", *_API_NAMES]


def __getattr__(name):
    if name in _API_NAMES:
        from wespk import api

        return getattr(api, name)
    raise AttributeError(f"module 'wespk' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API_NAMES))
