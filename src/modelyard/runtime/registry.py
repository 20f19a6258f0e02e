"""Backends by name: ``backend:device`` -> a Backend instance, imported only when used.

Example::

    runner = get_backend("onnxruntime:cpu").load(spec.source())
    for entry in list_backends():
        print(entry.name, entry.available, entry.reason)
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass

from modelyard.core.errors import InvalidInput, Unavailable

# backend name -> "module:attr" of its Backend class: adding a backend is its module plus one line here
BACKENDS: dict[str, str] = {
    "torch": "modelyard.runtime.torch_backend:TorchBackend",
    "onnxruntime": "modelyard.runtime.onnxruntime_backend:OnnxRuntimeBackend",
    "openvino": "modelyard.runtime.openvino_backend:OpenVinoBackend",
    "null": "modelyard.runtime.null_backend:NullBackend",
}


@dataclass(frozen=True)
class BackendStatus:
    """One ``backend:device`` as ``modelyard backends`` lists it."""

    name: str
    available: bool
    reason: str
    formats: tuple[str, ...]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["formats"] = list(self.formats)
        return data

    def __str__(self) -> str:
        return f"{self.name}: {'available' if self.available else 'unavailable (' + self.reason + ')'}"

    def __bool__(self) -> bool:
        return self.available


def _backend_class(name: str):
    target = BACKENDS.get(name)
    if target is None:
        raise InvalidInput(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise Unavailable(f"backend {name} cannot be imported: {exc}") from exc
    return getattr(module, attr)


def parse_backend_name(full_name: str) -> tuple[str, str]:
    """``"torch:cuda"`` -> ``("torch", "cuda")``; a bare ``"torch"`` means its first device (cpu)."""
    if not isinstance(full_name, str) or not full_name.strip():
        raise InvalidInput("backend name must look like 'torch:cpu' or 'onnxruntime:cpu'")
    name, _, device = full_name.strip().partition(":")
    return name, device


def get_backend(full_name: str):
    """The Backend for ``backend:device`` (unknown names and devices are InvalidInput; nothing is probed yet)."""
    name, device = parse_backend_name(full_name)
    cls = _backend_class(name)
    device = device or cls.devices[0]
    if device not in cls.devices:
        raise InvalidInput(f"unknown device {device!r} for backend {name} (known: {', '.join(cls.devices)})")
    return cls(device)


def list_backends() -> list[BackendStatus]:
    """Every known ``backend:device`` with whether it runs here and, if not, why. Never raises."""
    statuses: list[BackendStatus] = []
    for name in BACKENDS:
        try:
            cls = _backend_class(name)  # cheap: backend modules import their engine inside functions
        except Exception as exc:  # noqa: BLE001 - a broken backend module is reported, not raised
            statuses.append(BackendStatus(f"{name}:*", False, str(exc), ()))
            continue
        try:
            importlib.import_module(cls.requires)
        except Exception as exc:  # noqa: BLE001 - a broken optional stack is reported, not raised
            statuses.append(BackendStatus(f"{name}:*", False, f"{cls.requires} cannot be imported: {exc}", ()))
            continue
        for device in cls.devices:
            backend = cls(device)
            ok, reason = backend.available()
            statuses.append(BackendStatus(backend.full_name, ok, reason, tuple(cls.formats)))
    return statuses


def available_backends() -> list[str]:
    return [s.name for s in list_backends() if s.available]
