"""Clustering of sub-segment embeddings into speakers.

* ``spectral`` (the default, as in WeSpeaker and 3D-Speaker): cosine
  affinity, each row pruned to its strongest ``pval`` fraction (at least
  ``min_neighbours``; WeSpeaker keeps 1.2% on VoxConverse's long recordings,
  wespk's default 20% was chosen on minute-long conversations, see
  ``docs/diarization.md``), symmetrised, unnormalised Laplacian ``L = D - A``; the
  number of speakers is the position of the largest gap between consecutive
  smallest eigenvalues (within ``[min_speakers, max_speakers]``) unless given;
  k-means (seeded) on the first eigenvectors.
* ``agglomerative``: average-linkage agglomerative clustering on cosine
  distance, stopped at ``threshold`` (cosine distance) or at ``num_speakers``.

Memory: the dense methods build an ``N x N`` matrix. Above ``max_dense``
embeddings (default 3000, 72 MB of float64) :func:`cluster_embeddings`
works in time-ordered chunks of ``chunk_size``: each chunk is clustered on
its own, the chunk clusters are represented by their mean embeddings, those
are clustered with the same method, and finally every embedding is assigned
to its nearest speaker centroid (two refinement passes). Memory is then
``O(chunk_size^2 + N * D)`` whatever the length of the recording.

Everything is deterministic for a given ``seed``.
"""

import dataclasses
import logging
from typing import Optional

import numpy as np

logger = logging.getLogger(__name__)

CLUSTERING_METHODS = ("spectral", "agglomerative")


@dataclasses.dataclass(frozen=True)
class ClusteringConfig:
    method: str = "spectral"
    num_speakers: Optional[int] = None
    min_speakers: int = 1
    max_speakers: int = 10
    #: agglomerative: merge while the average cosine distance is below this
    threshold: float = 0.5
    #: spectral: fraction of each affinity row kept, and the fewest neighbours kept
    pval: float = 0.2
    min_neighbours: int = 6
    max_dense: int = 3000
    chunk_size: int = 1000
    seed: int = 777

    def __post_init__(self):
        if self.method not in CLUSTERING_METHODS:
            raise ValueError(f"unknown clustering method {self.method!r}; choose from {', '.join(CLUSTERING_METHODS)}")
        if self.min_speakers < 1 or self.max_speakers < self.min_speakers:
            raise ValueError(f"need 1 <= min_speakers <= max_speakers, got {self.min_speakers} and {self.max_speakers}")
        if self.num_speakers is not None and self.num_speakers < 1:
            raise ValueError(f"num_speakers must be at least 1, got {self.num_speakers}")
        if not 0 < self.pval <= 1:
            raise ValueError(f"pval must be in (0, 1], got {self.pval}")
        if self.chunk_size < 2 or self.max_dense < self.chunk_size:
            raise ValueError(f"need 2 <= chunk_size <= max_dense, got {self.chunk_size} and {self.max_dense}")


def l2_normalise(embeddings: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def prune_affinity(affinity: np.ndarray, pval: float, min_neighbours: int) -> np.ndarray:
    """Keep the ``max(min_neighbours, pval * N)`` largest entries of each row, zero the rest."""
    n = affinity.shape[0]
    keep = int(max(min_neighbours, round(pval * n)))
    if keep >= n:
        return affinity.copy()
    pruned = affinity.copy()
    drop = np.argpartition(affinity, n - keep, axis=1)[:, : n - keep]
    np.put_along_axis(pruned, drop, 0.0, axis=1)
    return pruned


def _kmeans(points: np.ndarray, k: int, seed: int, n_init: int = 10) -> np.ndarray:
    """k-means++ (scipy) from ``n_init`` seeded starts; the labels of the lowest distortion."""
    from scipy.cluster.vq import kmeans2
    best, best_cost = None, np.inf
    for start in range(n_init):
        centres, labels = kmeans2(points, k, minit="++", seed=np.random.default_rng([seed, start]))
        cost = float(np.sum((points - centres[labels]) ** 2))
        if cost < best_cost - 1e-12:
            best, best_cost = labels, cost
    return best


def spectral_labels(embeddings: np.ndarray, config: ClusteringConfig,
                    num_speakers: Optional[int] = None) -> np.ndarray:
    """Spectral clustering of (at most ``max_dense``) embeddings; labels ``[N]``."""
    import scipy.linalg
    x = l2_normalise(embeddings)
    n = x.shape[0]
    num_speakers = num_speakers if num_speakers is not None else config.num_speakers
    if n <= 2:   # too few to find a gap: one speaker unless told otherwise
        return np.arange(n) if num_speakers is not None and num_speakers >= n else np.zeros(n, dtype=np.int64)
    affinity = x @ x.T
    pruned = prune_affinity(affinity, config.pval, config.min_neighbours)
    symmetric = 0.5 * (pruned + pruned.T)
    np.fill_diagonal(symmetric, 0.0)
    laplacian = np.diag(symmetric.sum(axis=1)) - symmetric
    max_k = min(config.max_speakers, n - 1)
    eigenvalues, eigenvectors = scipy.linalg.eigh(laplacian, subset_by_index=[0, min(max_k, n - 1)])
    if num_speakers is None:
        gaps = np.diff(eigenvalues[: max_k + 1])
        lo = config.min_speakers - 1
        k = int(np.argmax(gaps[lo:])) + 1 + lo if len(gaps) > lo else config.min_speakers
    else:
        k = num_speakers
    k = int(max(1, min(k, n)))
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    if k > eigenvectors.shape[1]:
        eigenvalues, eigenvectors = scipy.linalg.eigh(laplacian, subset_by_index=[0, k - 1])
    return _kmeans(eigenvectors[:, :k], k, config.seed)


def agglomerative_labels(embeddings: np.ndarray, config: ClusteringConfig,
                         num_speakers: Optional[int] = None) -> np.ndarray:
    """Average-linkage clustering on cosine distance; labels ``[N]``."""
    from scipy.cluster.hierarchy import fcluster, linkage
    x = l2_normalise(embeddings)
    n = x.shape[0]
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    num_speakers = num_speakers if num_speakers is not None else config.num_speakers
    tree = linkage(x, method="average", metric="cosine")
    if num_speakers is not None:
        labels = fcluster(tree, t=min(num_speakers, n), criterion="maxclust")
    else:
        labels = fcluster(tree, t=config.threshold, criterion="distance")
        count = labels.max()
        if count < config.min_speakers:
            labels = fcluster(tree, t=min(config.min_speakers, n), criterion="maxclust")
        elif count > config.max_speakers:
            labels = fcluster(tree, t=config.max_speakers, criterion="maxclust")
    return labels.astype(np.int64) - 1


def _dense_labels(embeddings: np.ndarray, config: ClusteringConfig, num_speakers: Optional[int] = None) -> np.ndarray:
    if config.method == "spectral":
        return spectral_labels(embeddings, config, num_speakers)
    return agglomerative_labels(embeddings, config, num_speakers)


def relabel_by_first_appearance(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0, 1, ... in order of first appearance (a canonical form)."""
    labels = np.asarray(labels)
    mapping = {}
    for label in labels.tolist():
        mapping.setdefault(label, len(mapping))
    return np.array([mapping[v] for v in labels.tolist()], dtype=np.int64)


def centroids_of(x: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    sums = np.zeros((count, x.shape[1]))
    np.add.at(sums, labels, x)
    return l2_normalise(sums)


def chunked_labels(embeddings: np.ndarray, config: ClusteringConfig, refine_passes: int = 2) -> np.ndarray:
    """Two-level clustering in bounded memory (see the module docstring)."""
    x = l2_normalise(embeddings)
    n = x.shape[0]
    chunk_centroids, chunk_members = [], []
    for begin in range(0, n, config.chunk_size):
        part = x[begin: begin + config.chunk_size]
        local_config = dataclasses.replace(config, num_speakers=None, min_speakers=1)
        local = relabel_by_first_appearance(_dense_labels(part, local_config))
        count = int(local.max()) + 1
        chunk_centroids.append(centroids_of(part, local, count))
        chunk_members.append(local + sum(c.shape[0] for c in chunk_centroids[:-1]))
    centroids = np.concatenate(chunk_centroids)
    logger.info("chunked clustering: %d embeddings in %d chunks -> %d chunk clusters",
                n, len(chunk_centroids), centroids.shape[0])
    # cluster the chunk clusters, weighting each by repeating it in proportion to its size would
    # need memory; the centroids are few and stand for themselves
    top = _dense_labels(centroids, config)
    labels = top[np.concatenate(chunk_members)]
    for _ in range(refine_passes):
        labels = relabel_by_first_appearance(labels)
        count = int(labels.max()) + 1
        speaker_centroids = centroids_of(x, labels, count)
        labels = np.argmax(x @ speaker_centroids.T, axis=1)
    return labels


def cluster_embeddings(embeddings: np.ndarray, config: ClusteringConfig = ClusteringConfig()) -> np.ndarray:
    """Speaker labels ``[N]`` (0-based, numbered by first appearance) for embeddings ``[N, D]`` in time order."""
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be [N, D], got shape {embeddings.shape}")
    n = embeddings.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    if n > config.max_dense:
        labels = chunked_labels(embeddings, config)
    else:
        labels = _dense_labels(embeddings, config)
    return relabel_by_first_appearance(labels)
