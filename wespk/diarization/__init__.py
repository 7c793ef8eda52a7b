"""Speaker diarization: speech regions -> sub-segments -> embeddings ->
clustering -> labelled turns in NIST RTTM, scored with ``pyannote.metrics``.

Modules: :mod:`~wespk.diarization.rttm` (turns and RTTM files),
:mod:`~wespk.diarization.segmentation` (sub-segments, merging labels into
turns), :mod:`~wespk.diarization.clustering` (spectral with eigengap,
agglomerative, chunked for long recordings), :mod:`~wespk.diarization.metrics`
(DER, JER), :mod:`~wespk.diarization.pipeline` (the whole chain),
:mod:`~wespk.diarization.plots` (time-line PNG) and
:mod:`~wespk.diarization.simulation` (synthetic conversations with reference).
"""
