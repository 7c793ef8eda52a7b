"""Fixtures: a few real utterances (WAV copies in a temporary directory)."""

from tests.data.real_speech import speech_wavs  # noqa: F401 - a fixture
