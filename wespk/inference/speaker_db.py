"""A speaker database: a mean embedding per enrolled name, searched by cosine similarity.

:class:`SpeakerManager` holds the enrollments (``wespk enroll`` / ``wespk
identify`` and :class:`wespk.SpeakerManager`); with an embedder (anything with
``embed_batch``, ``is_embedding``, ``model_name`` and ``embed_dim``, such as
:class:`wespk.api.SpeakerEmbedder`) it takes audio as well as embeddings.
Saved as JSON or ``.npz``, written atomically.
"""

import json
import logging
import os
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from wespk.inference.audio_input import as_numpy
from wespk.io.files import atomic_output

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two vectors; a zero vector is an error."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare embeddings of dimensions {a.shape[0]} and {b.shape[0]}")
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if norms == 0:
        raise ValueError("cannot score a zero embedding")
    return float(np.dot(a, b) / norms)


DB_FORMAT = "wespk-speaker-db"
DB_VERSION = 1


class SpeakerDatabaseError(ValueError):
    """A speaker database file that cannot be read, or that does not fit the model."""


class SpeakerManager:
    """Enrolled speakers: a mean embedding per name, searchable by cosine similarity.

    Each speaker's vector is the mean of the raw embeddings of all its
    enrollments (:meth:`add` may be called several times for one name).
    With an ``embedder`` the methods take audio as well as embeddings.
    Saved as JSON (``.json``) or numpy (``.npz``), written atomically.
    """

    def __init__(self, embedder: Optional[Any] = None):
        self.embedder = embedder
        self._sums: Dict[str, np.ndarray] = {}
        self._counts: Dict[str, int] = {}
        self.model_name: Optional[str] = embedder.model_name if embedder is not None else None
        self.embed_dim: Optional[int] = embedder.embed_dim if embedder is not None else None

    def __len__(self) -> int:
        return len(self._sums)

    def __contains__(self, name: str) -> bool:
        return name in self._sums

    @property
    def names(self) -> List[str]:
        return list(self._sums)

    def count(self, name: str) -> int:
        """Number of enrollments averaged into ``name``."""
        return self._counts[name]

    def embedding(self, name: str) -> np.ndarray:
        """The mean embedding of ``name``."""
        return (self._sums[name] / self._counts[name]).astype(np.float32)

    def _vectors(self, item: Any, sample_rate: Optional[int]) -> np.ndarray:
        """``[N, D]`` embeddings of one input or a list of inputs (audio or embeddings)."""
        items = list(item) if isinstance(item, (list, tuple)) else [item]
        if not items:
            raise ValueError("nothing to enroll")
        vectors: List[Optional[np.ndarray]] = [None] * len(items)
        audio_positions = []
        for i, one in enumerate(items):
            if self.embedder is not None and self.embedder.is_embedding(one):
                vectors[i] = np.asarray(as_numpy(one), dtype=np.float32)
            elif self.embedder is None:
                data = as_numpy(one) if not isinstance(one, (str, os.PathLike)) else None
                if data is None or data.ndim != 1 or data.dtype.kind != "f":
                    raise ValueError("this SpeakerManager has no embedder: pass 1-D float embeddings")
                vectors[i] = data.astype(np.float32)
            else:
                audio_positions.append(i)
        if audio_positions:
            embedded = self.embedder.embed_batch([items[i] for i in audio_positions], sample_rate)
            for i, vector in zip(audio_positions, embedded):
                vectors[i] = vector
        matrix = np.stack(vectors)
        if self.embed_dim is None:
            self.embed_dim = int(matrix.shape[1])
        if matrix.shape[1] != self.embed_dim:
            raise ValueError(f"embedding dimension {matrix.shape[1]} differs from the database's {self.embed_dim}")
        if not np.isfinite(matrix).all():
            raise ValueError("embedding contains NaN or Inf")
        return matrix

    def add(self, name: str, audio_or_embedding: Any, sample_rate: Optional[int] = None) -> int:
        """Enroll one input or a list of inputs under ``name``; returns its number of enrollments."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"speaker name must be a non-empty string, got {name!r}")
        matrix = self._vectors(audio_or_embedding, sample_rate)
        total = matrix.astype(np.float64).sum(axis=0)
        if name in self._sums:
            self._sums[name] = self._sums[name] + total
            self._counts[name] += matrix.shape[0]
        else:
            self._sums[name] = total
            self._counts[name] = matrix.shape[0]
        return self._counts[name]

    def remove(self, name: str) -> None:
        """Forget ``name``; KeyError when it is not enrolled."""
        if name not in self._sums:
            raise KeyError(f"speaker {name!r} is not enrolled")
        del self._sums[name]
        del self._counts[name]

    def scores(self, audio_or_embedding: Any, sample_rate: Optional[int] = None) -> List[Tuple[str, float]]:
        """Cosine score against every enrolled speaker, best first (ties by name)."""
        query = self._vectors(audio_or_embedding, sample_rate)[0]
        results = [(name, cosine_similarity(query, self._sums[name] / self._counts[name])) for name in self._sums]
        results.sort(key=lambda kv: (-kv[1], kv[0]))
        return results

    def search(self, audio_or_embedding: Any, threshold: Optional[float] = None, top_k: Optional[int] = None,
               sample_rate: Optional[int] = None) -> List[Tuple[str, float]]:
        """Enrolled speakers scoring at least ``threshold`` (all when None), best first, at most ``top_k``."""
        results = self.scores(audio_or_embedding, sample_rate)
        if threshold is not None:
            results = [(name, score) for name, score in results if score >= threshold]
        return results[:top_k] if top_k is not None else results

    # -- files -----------------------------------------------------------
    def save(self, path: PathLike) -> None:
        """Write the database atomically: ``.npz`` as numpy arrays, anything else as JSON."""
        path = os.fspath(path)
        names = self.names
        means = np.stack([self.embedding(n) for n in names]) if names else \
            np.zeros((0, self.embed_dim or 0), dtype=np.float32)
        meta = {"format": DB_FORMAT, "version": DB_VERSION, "model": self.model_name, "embed_dim": self.embed_dim}
        if path.endswith(".npz"):
            with atomic_output(path, "wb") as f:
                np.savez(f, names=np.array(names, dtype=str), embeddings=means,
                         counts=np.array([self._counts[n] for n in names], dtype=np.int64),
                         meta=np.array(json.dumps(meta)))
            return
        document = dict(meta, speakers=[{"name": n, "count": self._counts[n],
                                         "embedding": [float(v) for v in means[i]]} for i, n in enumerate(names)])
        with atomic_output(path) as f:
            json.dump(document, f, indent=1)
            f.write("\n")

    @classmethod
    def load(cls, path: PathLike, embedder: Optional[Any] = None) -> "SpeakerManager":
        """Read a database written by :meth:`save`; with ``embedder``, check that it fits the model."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise SpeakerDatabaseError(f"{path}: speaker database not found")
        try:
            if path.endswith(".npz"):
                with np.load(path, allow_pickle=False) as arrays:
                    meta = json.loads(str(arrays["meta"]))
                    names = [str(n) for n in arrays["names"]]
                    means = np.asarray(arrays["embeddings"], dtype=np.float32)
                    counts = [int(c) for c in arrays["counts"]]
            else:
                with open(path, encoding="utf-8") as f:
                    meta = json.load(f)
                speakers = meta.get("speakers")
                if not isinstance(speakers, list):
                    raise KeyError("speakers")
                names = [str(s["name"]) for s in speakers]
                counts = [int(s["count"]) for s in speakers]
                means = np.array([s["embedding"] for s in speakers], dtype=np.float32).reshape(len(names), -1)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SpeakerDatabaseError(f"{path}: not a wespk speaker database ({type(e).__name__}: {e})") from None
        if meta.get("format") != DB_FORMAT or meta.get("version") != DB_VERSION:
            raise SpeakerDatabaseError(f"{path}: not a {DB_FORMAT} version {DB_VERSION} file")
        if len(set(names)) != len(names) or len(counts) != len(names) or any(c < 1 for c in counts):
            raise SpeakerDatabaseError(f"{path}: duplicate names or bad enrollment counts")
        manager = cls(embedder)
        stored_dim = meta.get("embed_dim")
        if names and stored_dim is not None and means.shape[1] != stored_dim:
            raise SpeakerDatabaseError(f"{path}: embeddings have dimension {means.shape[1]}, header says {stored_dim}")
        if embedder is not None:
            model_dim = embedder.embed_dim
            if stored_dim is not None and model_dim is not None and stored_dim != model_dim:
                raise SpeakerDatabaseError(f"{path}: made with {stored_dim}-dim embeddings "
                                           f"({meta.get('model')}), but the model gives {model_dim}-dim ones")
            if meta.get("model") and meta.get("model") != embedder.model_name:
                logger.warning("%s was made with model %s, now scoring with %s", path, meta.get("model"),
                               embedder.model_name)
        manager.model_name = meta.get("model") or manager.model_name
        manager.embed_dim = stored_dim if stored_dim is not None else manager.embed_dim
        for name, mean, count in zip(names, means, counts):
            manager._sums[name] = mean.astype(np.float64) * count
            manager._counts[name] = count
        return manager
