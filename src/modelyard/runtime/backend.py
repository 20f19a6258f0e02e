"""Backend and Runner base classes: one public method each, doing validation and timing, calling one hook.

A ``Backend`` (``torch``, ``onnxruntime``, ``openvino``) is named with a device as ``backend:device``; ``load``
turns an :class:`~modelyard.runtime.spec.Artifact` into a ``Runner``. A ``Runner`` runs feeds
(``dict[str, np.ndarray]``) and returns outputs the same way, so comparing and benchmarking work on plain arrays.

Layer-wise comparison uses three more runner methods, all keyed by *layer names* (torch module paths such as
``encoder.layer.3.attention.self.query``; a module's k-th call in one forward is ``path#k``):

* ``layers()``: the layers this runner can expose, in topological order.
* ``intermediates(feeds, names)``: each layer's primary output.
* ``layer_calls(feeds, names)``: each layer's inputs (what the reference hands to a replay).
* ``replay(feeds, calls)``: run only the named layers of *this* runner on the given inputs.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from modelyard.core.errors import InvalidInput, Unavailable


@dataclass(frozen=True)
class TensorInfo:
    """A named tensor with a shape whose dims are ints, names (dynamic) or ``None`` (unknown)."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: str

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class LayerInfo:
    """One comparable layer.

    Args:
        name: the torch module path (``path#k`` for the k-th call of a reused module).
        target_name: what this runner calls it (an ONNX tensor name, or the module path for torch).
        op_types: the operators that make it up (empty for torch).
    """

    name: str
    target_name: str
    op_types: tuple[str, ...] = ()


@dataclass
class LayerCall:
    """A layer's inputs as the reference saw them: positional and keyword arguments, tensors as numpy arrays."""

    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)

    def arrays(self) -> list[np.ndarray]:
        """Every array among the arguments, in call order (positional first), nested containers flattened."""
        found: list[np.ndarray] = []

        def visit(value: Any) -> None:
            if isinstance(value, np.ndarray):
                found.append(value)
            elif isinstance(value, list | tuple):
                for item in value:
                    visit(item)
            elif isinstance(value, dict):
                for item in value.values():
                    visit(item)

        visit(self.args)
        visit(self.kwargs)
        return found


class Runner(ABC):
    """A loaded model on one backend and device. Subclasses fill ``_infer_impl`` (and optionally the layer hooks).

    Attributes:
        backend_name: ``backend:device``.
        inputs: the inputs the model declares.
        output_names: output names in order.
        info: facts worth recording with a result (precision hint, providers, versions).
        last_latency_s: wall time of the last ``infer`` call.
    """

    backend_name: str = ""

    def __init__(self, inputs: list[TensorInfo], output_names: list[str], info: dict | None = None):
        self.inputs = list(inputs)
        self.output_names = list(output_names)
        self.info = dict(info or {})
        self.last_latency_s: float | None = None

    # -- public API --------------------------------------------------------------------------------------------

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on ``feeds`` and return every output as a numpy array.

        Raises:
            InvalidInput: a feed is missing, unexpected, or has the wrong rank or a fixed dim that differs.
        """
        checked = self.check_feeds(feeds)
        start = time.perf_counter()
        outputs = self._infer_impl(checked)
        self.last_latency_s = time.perf_counter() - start
        return {name: np.asarray(value) for name, value in outputs.items()}

    def layers(self) -> list[LayerInfo]:
        """The layers this runner exposes for layer-wise comparison, in topological order (empty when none)."""
        return self._layers_impl()

    def intermediates(self, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        """Run once and return the primary output of each named layer (layers it cannot see are left out)."""
        return self._intermediates_impl(self.check_feeds(feeds), list(names))

    def layer_calls(self, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, LayerCall]:
        """Run once and return the inputs each named layer received."""
        return self._layer_calls_impl(self.check_feeds(feeds), list(names))

    def replay(self, feeds: dict[str, np.ndarray], calls: dict[str, LayerCall]) -> dict[str, np.ndarray]:
        """Run each named layer alone on the given inputs (from another runner); layers it cannot replay are left
        out. ``feeds`` are the whole model's feeds, for inputs a layer needs that the calls do not carry."""
        return self._replay_impl(self.check_feeds(feeds), calls)

    def check_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate names, ranks and fixed dims; cast to the declared dtype where the kind matches."""
        if not isinstance(feeds, dict):
            raise InvalidInput(f"feeds must be a dict of name -> array, got {type(feeds).__name__}")
        expected = {t.name: t for t in self.inputs}
        missing = [n for n in expected if n not in feeds]
        extra = [n for n in feeds if n not in expected]
        if missing or extra:
            raise InvalidInput(
                f"{self.backend_name}: input names do not match the model: model expects {list(expected)}"
                + (f", missing {missing}" if missing else "")
                + (f", unexpected {extra}" if extra else "")
            )
        checked = {}
        for name, info in expected.items():
            value = np.asarray(feeds[name])
            if len(info.shape) != value.ndim:
                raise InvalidInput(
                    f"{self.backend_name}: input {name!r} has shape {list(value.shape)}, "
                    f"the model expects rank {len(info.shape)} ({list(info.shape)})"
                )
            for axis, (want, got) in enumerate(zip(info.shape, value.shape, strict=True)):
                if isinstance(want, int) and want != got:
                    raise InvalidInput(
                        f"{self.backend_name}: input {name!r} has shape {list(value.shape)}, "
                        f"the model expects {list(info.shape)} (dim {axis} must be {want})"
                    )
            checked[name] = _cast(value, info.dtype, name)
        return checked

    def close(self) -> None:
        """Release device memory or sessions; the default does nothing."""

    # -- hooks -------------------------------------------------------------------------------------------------

    @abstractmethod
    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run validated feeds; return every output by name."""

    def _layers_impl(self) -> list[LayerInfo]:
        return []

    def _intermediates_impl(self, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        return {}

    def _layer_calls_impl(self, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, LayerCall]:
        return {}

    def _replay_impl(self, feeds: dict[str, np.ndarray], calls: dict[str, LayerCall]) -> dict[str, np.ndarray]:
        return {}


def _cast(value: np.ndarray, dtype: str, name: str) -> np.ndarray:
    if dtype == "string":
        return as_text(value, name)
    if dtype in ("", "unknown") or value.dtype.name == dtype:
        return value
    if dtype == "bfloat16":
        import ml_dtypes

        return value.astype(ml_dtypes.bfloat16)
    target = np.dtype(dtype)
    same_kind = (np.issubdtype(value.dtype, np.floating) and np.issubdtype(target, np.floating)) or (
        np.issubdtype(value.dtype, np.integer) and np.issubdtype(target, np.integer)
    )
    if not same_kind and not (value.dtype == np.bool_ and target == np.bool_):
        raise InvalidInput(f"input {name!r} has dtype {value.dtype}, the model expects {dtype}")
    return value.astype(target)


def as_text(value: np.ndarray, name: str) -> np.ndarray:
    """A text tensor as engines take it: a numpy object array of ``str`` (ONNX ``tensor(string)``)."""
    if value.dtype.kind == "U":
        return value.astype(object)
    if value.dtype.kind == "O" and all(isinstance(v, str) for v in value.flat):
        return value
    raise InvalidInput(f"input {name!r} takes text (strings), got {value.dtype} values")


class Backend(ABC):
    """An inference stack. Subclasses set ``name``, ``devices``, ``formats`` and fill ``_available_impl`` and
    ``_load_impl``. Constructors do no I/O: probing happens in ``available()``.

    Args:
        device: the device part of ``backend:device`` (``cpu``, ``cuda``, ``npu``...).
    """

    name: ClassVar[str] = ""
    devices: ClassVar[tuple[str, ...]] = ()
    formats: ClassVar[tuple[str, ...]] = ()

    def __init__(self, device: str = "cpu"):
        self.device = device

    @property
    def full_name(self) -> str:
        return f"{self.name}:{self.device}"

    def available(self) -> tuple[bool, str]:
        """``(True, "")`` when this backend can run here, else ``(False, why)``; never raises."""
        if self.device not in self.devices:
            return False, f"unknown device {self.device!r} for {self.name} (known: {', '.join(self.devices)})"
        try:
            return self._available_impl()
        except Exception as exc:  # noqa: BLE001 - probing an optional stack must never crash a listing
            return False, f"{type(exc).__name__}: {exc}"

    def load(self, artifact, **options) -> Runner:
        """Load ``artifact`` (an :class:`~modelyard.runtime.spec.Artifact`) into a Runner.

        Raises:
            Unavailable: the stack or device is missing (the message says why).
            InvalidInput: this backend cannot run the artifact's format.
        """
        ok, why = self.available()
        if not ok:
            raise Unavailable(f"backend {self.full_name} is not available: {why}")
        if artifact.format not in self.formats:
            raise InvalidInput(
                f"backend {self.full_name} cannot run a {artifact.format} model (it runs {', '.join(self.formats)})"
            )
        runner = self._load_impl(artifact, dict(options))
        runner.backend_name = self.full_name
        return runner

    @abstractmethod
    def _available_impl(self) -> tuple[bool, str]:
        """Probe the stack and device: ``(True, "")`` or ``(False, why)``."""

    @abstractmethod
    def _load_impl(self, artifact, options: dict) -> Runner:
        """Load an artifact of a supported format with validated options."""
