"""Sub-segmentation, labels -> turns, and clustering: counts, determinism, the bounded-memory path."""

import tracemalloc

import numpy as np
import pytest

from wespk.diarization.clustering import ClusteringConfig, cluster_embeddings
from wespk.diarization.segmentation import SubSegment, labels_to_turns, subsegment_regions


def test_subsegments_cover_each_region_and_end_where_it_ends():
    subs = subsegment_regions([(0.0, 4.0), (5.0, 5.9), (7.0, 8.6)], window=1.5, shift=0.75)
    def spans(region):
        return [round(t, 6) for s in subs if s.region == region for t in (s.start, s.end)]
    assert spans(0) == [0.0, 1.5, 0.75, 2.25, 1.5, 3.0, 2.25, 3.75, 2.5, 4.0]
    assert spans(1) == [5.0, 5.9]   # shorter than a window
    assert spans(2) == [7.0, 8.5, 7.1, 8.6]
    assert subsegment_regions([(0.0, 0.2)], min_duration=0.3) == []
    with pytest.raises(ValueError, match="shift"):
        subsegment_regions([(0, 3)], window=1.0, shift=2.0)


def test_label_changes_fall_in_the_middle_of_the_overlap():
    subs = [SubSegment(0.0, 1.5, 0), SubSegment(0.75, 2.25, 0), SubSegment(1.5, 3.0, 0), SubSegment(4.0, 5.5, 1)]
    turns = labels_to_turns(subs, [3, 3, 1, 1], "r")
    assert [(t.start, t.end, t.speaker) for t in turns] == [(0.0, 1.875, "spk00"), (1.875, 3.0, "spk01"),
                                                            (4.0, 5.5, "spk01")]


def _speaker_embeddings(rng, speakers, per_turn, turns, dim=32, spread=0.35):
    """Embeddings in time order: ``turns`` turns cycling through ``speakers`` speakers."""
    centres = rng.standard_normal((speakers, dim))
    labels = np.repeat(np.arange(turns) % speakers, per_turn)
    return centres[labels] + spread * rng.standard_normal((len(labels), dim)), labels


def _same_partition(a, b):
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("method", ["spectral", "agglomerative"])
def test_finds_the_speakers_and_is_deterministic(method):
    rng = np.random.default_rng(0)
    x, truth = _speaker_embeddings(rng, speakers=4, per_turn=12, turns=12)
    config = ClusteringConfig(method=method, threshold=0.6)
    labels = cluster_embeddings(x, config)
    assert _same_partition(labels, truth)
    assert labels[0] == 0 and set(labels.tolist()) == {0, 1, 2, 3}
    assert np.array_equal(labels, cluster_embeddings(x.copy(), config))
    # a given number of speakers is obeyed
    assert len(set(cluster_embeddings(x, ClusteringConfig(method=method, num_speakers=2)).tolist())) == 2


def test_one_speaker_and_tiny_inputs():
    rng = np.random.default_rng(1)
    x, _ = _speaker_embeddings(rng, speakers=1, per_turn=30, turns=1)
    assert set(cluster_embeddings(x).tolist()) == {0}
    assert set(cluster_embeddings(x, ClusteringConfig(method="agglomerative")).tolist()) == {0}
    assert cluster_embeddings(x[:1]).tolist() == [0]
    assert cluster_embeddings(x[:0]).tolist() == []
    assert cluster_embeddings(x[:2]).tolist() == [0, 0]
    with pytest.raises(ValueError, match="min_speakers"):
        ClusteringConfig(min_speakers=3, max_speakers=2)


def test_long_sequence_is_clustered_in_bounded_memory():
    # 3000 sub-segments (38 minutes at a 0.75 s shift): a dense float64 affinity would take 72 MB
    rng = np.random.default_rng(2)
    x, truth = _speaker_embeddings(rng, speakers=5, per_turn=8, turns=375, dim=64)
    config = ClusteringConfig(max_dense=600, chunk_size=300)
    tracemalloc.start()
    labels = cluster_embeddings(x, config)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20e6, f"peak {peak / 1e6:.0f} MB"
    assert _same_partition(labels, truth)
    forced = cluster_embeddings(x, ClusteringConfig(max_dense=600, chunk_size=300, num_speakers=5))
    assert np.array_equal(forced, labels)
