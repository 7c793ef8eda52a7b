"""Self-supervised speech frontends and layer aggregation.

* :mod:`wespk.frontends.ssl_frontend` - WavLM, HuBERT and wav2vec 2.0 from
  HuggingFace ``transformers`` (an optional dependency: ``tools/install.sh
  --ssl``), returning every hidden state ``[B, D, T, L]`` with frame lengths;
* :mod:`wespk.frontends.aggregation` - layer aggregation: SUPERB weighted sum,
  Layer Attentive Pooling (LAP) and multi-head factorised attentive pooling
  (MHFA);
* :mod:`wespk.models.ssl_model` - speaker models built from the two
  (registered as ``SSL_ASTP``, ``SSL_ECAPA_TDNN_GLOB_c512`` and ``SSL_MHFA``);
* :mod:`wespk.frontends.convert` - official / s3prl WavLM checkpoints to a
  HuggingFace model dir;
* :mod:`wespk.frontends.training` - the frontend's parameter group (its own
  learning-rate ratio) for the trainer.

``transformers`` is imported only when a frontend is built.
"""
