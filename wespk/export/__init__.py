"""Export to ONNX and TorchScript, and the runtimes that run exported models.

Modules:

* ``frontend``     the feature front end of a model dir (fbank + CMN, or resemblyzer's mel)
* ``encoder``      the module that is exported (RepVGG fused, embedding only, or GE2E partial windows)
* ``runtime``      one ``embed_features`` interface over eager PyTorch, ONNX Runtime and TorchScript
* ``parity``       the check that an exported model gives PyTorch's embeddings (max abs diff <= 1e-4)
* ``checked_export`` export a model dir, keep the file only when the parity check passes
* ``onnx_export``  ``export_onnx`` / ``export_model_dir_to_onnx`` (``python -m wespk.bin.export_onnx``)
* ``jit_export``   ``export_torchscript`` / ``export_model_dir_to_torchscript`` (``python -m wespk.bin.export_jit``)
"""
