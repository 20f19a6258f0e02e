"""Inference backends and ModelSpec: load a model on ``backend:device``, run numpy feeds, expose layers.

``spec`` (ModelSpec), ``backend`` (Backend/Runner base classes, typed options, profile and coverage hooks), one
module per backend (``torch_backend``, ``onnxruntime_backend``, ``openvino_backend``, ``null_backend``), ``registry``
(names -> backends), ``targets`` (which backends serve a device), ``feeds`` (random and real samples),
``graph_layers``/``onnx_graph`` (torch module boundaries in ONNX graphs), ``zoo`` (example models).
Never imports ``store`` or ``migrate``: comparing and benchmarking work on plain files.
"""
