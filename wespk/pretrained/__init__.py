"""Pretrained models from other toolkits, converted into wespk model dirs.

* :mod:`wespk.pretrained.resemblyzer` - resemblyzer's GE2E LSTM speaker
  encoder (``python -m wespk.bin.checkpoint_tool convert-resemblyzer OUT_DIR``).
"""
