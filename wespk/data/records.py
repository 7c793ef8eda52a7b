"""The one record of an utterance, shared by the training pipeline, extraction and the tools.

An :class:`Utterance` is what a data dir, a raw list, a feature list or a tar
shard says about one utterance: its key, its speaker (when known), where its
data is, and what indexing learned about it. Readers live in
:mod:`wespk.data.data_dir` (Kaldi data dirs, ``wav.scp``, raw lists) and
:mod:`wespk.data.lists` (feature lists, shards).
"""

import dataclasses
from dataclasses import dataclass
from typing import Optional

from wespk.io.audio import AudioRef, ref_from_wav_scp_value


@dataclass(frozen=True, slots=True)
class Utterance:
    """One utterance: key, speaker and where its audio (or features) are.

    ``audio`` is where the samples are: the ``wav.scp`` value as written (a
    path, or a command ending in ``|``), or a member of a tar shard, with the
    segment (``start``/``end`` in seconds) when the utterance is part of a
    longer recording. ``feat`` is a Kaldi ``ark:offset`` specifier for feature
    lists (then ``audio`` is None). ``duration`` (seconds) is set when the
    list or ``utt2dur`` gives it, or from the segment; ``num_frames`` when a
    feature list gives it; ``sample_rate``/``num_samples`` when a header was
    read while indexing (shards); ``error`` when indexing found the
    utterance unusable (the pipeline then skips it, naming it).
    """

    key: str
    speaker: Optional[str] = None
    audio: Optional[AudioRef] = None
    duration: Optional[float] = None
    feat: Optional[str] = None
    num_frames: Optional[int] = None
    sample_rate: Optional[int] = None
    num_samples: Optional[int] = None
    error: Optional[str] = None

    @classmethod
    def from_wav_scp(cls, key: str, value: str, speaker: Optional[str] = None,
                     start: Optional[float] = None, end: Optional[float] = None,
                     duration: Optional[float] = None, base_dir: Optional[str] = None) -> "Utterance":
        """An utterance whose audio is a ``wav.scp`` value (path or ``cmd |``), maybe a segment of it."""
        if duration is None and start is not None and end is not None:
            duration = end - start
        return cls(key, speaker, ref_from_wav_scp_value(value, start, end, base_dir), duration)

    @property
    def wav(self) -> Optional[str]:
        """The audio path or pipe command (a shard's path for shard members)."""
        return self.audio.path if self.audio is not None else None

    @property
    def start(self) -> Optional[float]:
        """Segment start in seconds (None: the recording's start)."""
        return self.audio.start if self.audio is not None else None

    @property
    def end(self) -> Optional[float]:
        """Segment end in seconds (None: the recording's end)."""
        return self.audio.end if self.audio is not None else None

    def source(self) -> str:
        """Where the data is, for messages."""
        if self.audio is not None:
            return self.audio.describe()
        return self.feat or "?"

    def replace(self, **changes) -> "Utterance":
        """A copy with ``changes`` (the record is immutable)."""
        return dataclasses.replace(self, **changes)
