"""Kaldi data dirs, raw / shard / feature lists, the online training pipeline
and its samplers."""
