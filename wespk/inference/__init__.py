"""Inference: a model dir turned into embeddings, by one engine for every backend and caller.

* ``model_dir``   the one model-dir resolver (:func:`~wespk.inference.model_dir.resolve_model_dir`) and loader
* ``frontend``    the model's input: fbank features or the waveform (:func:`~wespk.inference.frontend.input_kind`)
* ``runners``     eager PyTorch, TorchScript and ONNX Runtime behind one ``embed_inputs``
* ``optimize``    the eager inference copy: batch norm folded, channels-last
* ``extractor``   the extraction engine: batch plans, ``--nj`` jobs, ark or npy output, in-memory segments
* ``audio_input`` arrays, tensors and paths -> mono float32 waveforms (the API's inputs)
* ``speaker_db``  enrolled speakers: mean embeddings searched by cosine similarity
"""
