"""Diffusion-based speaker-embedding enhancement (SEED, Nam et al., Interspeech 2025).

A small denoising network trained without speaker labels on embeddings of
clean and degraded versions of the same speech from a frozen speaker model,
applied to any embedding of that model at test time.
"""
