"""Inference: loading a model dir and turning audio into embeddings."""
