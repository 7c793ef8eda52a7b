"""Export to ONNX and TorchScript, checked against PyTorch.

The runners that run exported models (and the model-dir resolver that finds
them) are the extraction engine's, in :mod:`wespk.inference.runners` and
:mod:`wespk.inference.model_dir`.

Modules:

* ``encoder``      the module that is exported (RepVGG fused, embedding only, or GE2E partial windows)
* ``parity``       the check that an exported model gives PyTorch's embeddings (max abs diff <= 1e-4)
* ``checked_export`` export a model dir, keep the file only when the parity check passes
* ``onnx_export``  ``export_onnx`` / ``export_model_dir_to_onnx`` (``python -m wespk.bin.export_onnx``)
* ``jit_export``   ``export_torchscript`` / ``export_model_dir_to_torchscript`` (``python -m wespk.bin.export_jit``)
"""
