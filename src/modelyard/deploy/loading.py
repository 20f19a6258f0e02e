"""Loading a registered version for serving (replicas and batch jobs): the backend ``auto`` resolves to, one
warm-up inference, and the fallback to onnxruntime:cpu when the preferred backend cannot serve the version."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from modelyard.runtime.targets import PORTABLE as AUTO_FALLBACK


def warm_feeds(signature) -> dict[str, np.ndarray] | None:
    """One row of zeros per input, when every dim but the first is fixed (else the model's valid sizes are
    unknown and warm-up is skipped)."""
    feeds = {}
    for tensor in signature.inputs:
        if any(not isinstance(d, int) for d in tensor.shape[1:]):
            return None
        if tensor.dtype == "string":  # a text input (a table's categorical column): "" is its missing value
            feeds[tensor.name] = np.full((1, *tensor.shape[1:]), "", dtype=object)
            continue
        dtype = "float32" if tensor.dtype == "bfloat16" else tensor.dtype
        try:
            feeds[tensor.name] = np.zeros((1, *tensor.shape[1:]), dtype=dtype)
        except TypeError:
            return None
    return feeds


def _load_warm(backend, artifact, options: dict, version):
    runner = backend.load(artifact, options)
    warm = warm_feeds(version.signature)
    if warm is not None:
        try:
            runner.infer(warm)
        except Exception as exc:  # noqa: BLE001 - any failure here means the version cannot serve
            runner.close()  # before a fallback loads: release what this one holds (and torch's thread count)
            raise RuntimeError(f"{version.ref}: warm-up inference failed on {backend.full_name}: {exc}") from exc
    return runner


def load_served(version, artifact, requested: str, threads: int | None = None,
                log: Callable[[str], None] | None = None):
    """``(backend, runner)`` for ``version`` (its materialized ``artifact``), loaded and warmed up.

    Args:
        requested: ``auto`` or a ``backend:device``. With ``auto`` (see
            :func:`modelyard.runtime.targets.auto_backend`) an ONNX version that the preferred backend cannot
            load or warm up (an attribute combination the ONNX-on-torch kernels refuse, say) is served on
            onnxruntime:cpu, and ``log`` is told why. A backend named explicitly never falls back.
        threads: intra-op threads for backends that take a ``threads`` option (None: the engine's default).

    Raises:
        ModelyardError or RuntimeError: the version cannot serve on the requested backend (nor on the fallback).
    """
    from modelyard.core.errors import ModelyardError
    from modelyard.runtime.registry import get_backend
    from modelyard.runtime.targets import auto_backend

    auto = requested == "auto"
    candidates = [auto_backend(version.format, artifact.path) if auto else requested]
    if auto and version.format == "onnx" and candidates[0] != AUTO_FALLBACK:
        candidates.append(AUTO_FALLBACK)
    for name in candidates[:-1]:
        backend = get_backend(name)
        try:
            return backend, _load_warm(backend, artifact, _options(backend, threads), version)
        except (ModelyardError, RuntimeError) as exc:
            if log is not None:
                log(f"auto: {version.ref} cannot serve on {name} ({exc}); falling back to {candidates[-1]}")
    backend = get_backend(candidates[-1])
    return backend, _load_warm(backend, artifact, _options(backend, threads), version)


def _options(backend, threads: int | None) -> dict:
    # NOTE: threads split the machine between replicas; a backend without the option runs with its own default
    return {"threads": threads} if threads and "threads" in backend.options_model.model_fields else {}
