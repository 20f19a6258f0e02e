"""The options of ``convert``, ``compare`` and ``benchmark``, declared once (pydantic).

The function (``passes.convert_model``, ``compare.compare``, ``bench.run_benchmark``), the CLI command (its option
defaults read from these fields), the job kind (``migrate.convert|compare|benchmark``: its spec embeds these) and
MIGRATION.yaml (its ``compare`` and ``benchmark`` sections) all validate with these models. This module stays
light (no numpy) because the CLI imports it to build its options.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from modelyard.migrate.action_spec import ActionSpec

# target format -> the passes after the source has become ONNX (``torch-to-onnx`` is prepended for torch specs)
TARGETS: dict[str, list[tuple[str, dict]]] = {
    "onnx": [],
    "onnx-simplified": [("onnx-simplify", {})],
    "onnx-fp16": [("onnx-fp16", {})],
    "onnx-int8": [("int8-dynamic", {})],
    "onnx-int8-static": [("int8-static", {})],
    "openvino": [("onnx-to-openvino", {})],
    "openvino-fp16": [("onnx-to-openvino", {"compress_to_fp16": True})],
    "openvino-bf16": [("onnx-to-openvino", {}), ("openvino-bf16-hint", {})],
    "openvino-int8": [("nncf-int8", {}), ("onnx-to-openvino", {})],
    "torch-export": [],
}



class ConvertSpec(ActionSpec):
    """What to convert to.

    Args:
        to: a target format of ``TARGETS`` (``onnx``, ``onnx-fp16``, ``openvino``, ...). Default ``onnx``.
        opset: ONNX opset for torch -> ONNX (default: the exporter's).
        calib: data for INT8 static calibration (``.npz``/``.npy`` folder/images; default random feeds).
    """

    to: str = "onnx"
    opset: int | None = Field(default=None, ge=7)
    calib: str | None = None

    @field_validator("to")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if value not in TARGETS:
            raise ValueError(f"unknown target format {value!r}; choose one of {', '.join(TARGETS)}")
        return value


class CompareSampling(ActionSpec):
    """How much a compare looks at: the part of ``CompareSpec`` MIGRATION.yaml's ``compare`` section sets.

    Args:
        samples: number of inputs compared. Default 8.
        layerwise: compare layer by layer and find the first divergence. Default False.
    """

    samples: int = Field(default=8, ge=1)
    layerwise: bool = False


class CompareSpec(CompareSampling):
    """A compare of a target against a reference.

    Args:
        reference: reference ``backend:device``. Default ``torch:cpu``.
        target: target ``backend:device``. Default ``onnxruntime:cpu``.
        target_model: a converted model (``.onnx``/``.xml``) to run on the target (default: export the spec).
        data: real samples (``.npz``, ``.npy`` folder, image folder; default seeded random feeds).
        seed: seed of the random feeds. Default 0.
        layer_depth: compare modules truncated to this many path components (default: leaf modules).
        preset: threshold preset ``fp32|fp16|bf16|int8`` (default: from the target's precision).
        thresholds: a ThresholdSet mapping with per-output overrides (default: the preset's).
    """

    reference: str = "torch:cpu"
    target: str = "onnxruntime:cpu"
    target_model: str | None = None
    data: str | None = None
    seed: int = 0
    layer_depth: int | None = Field(default=None, ge=1)
    preset: Literal["fp32", "fp16", "bf16", "int8"] | None = None
    thresholds: dict[str, Any] | None = None

    def threshold_set(self):
        """The ThresholdSet these options name (``None``: judge with the target precision's preset)."""
        if self.thresholds is None and self.preset is None:
            return None
        from modelyard.migrate.model.metrics import ThresholdSet

        data = dict(self.thresholds or {})
        if self.preset:
            data["preset"] = self.preset
        return ThresholdSet.model_validate(data)


class BenchmarkSizes(ActionSpec):
    """The part of ``BenchmarkSpec`` MIGRATION.yaml's ``benchmark`` section sets.

    Args:
        batch_sizes: batch sizes measured. Default [1].
    """

    batch_sizes: tuple[int, ...] = Field(default=(1,), min_length=1)

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, sizes: tuple[int, ...]) -> tuple[int, ...]:
        if any(size < 1 for size in sizes):
            raise ValueError(f"batch sizes must be at least 1, got {list(sizes)}")
        return sizes


class BenchmarkSpec(BenchmarkSizes):
    """A benchmark of one model on one backend.

    Args:
        backend: ``backend:device``. Default ``onnxruntime:cpu``.
        options: runtime options (``threads``, ``precision``, ...). Default none.
        model: a converted model (``.onnx``/``.xml``) to run (default: the spec's source).
        data: real samples (default: seeded random feeds).
        seed: seed of the random feeds. Default 0.
        profile: per-operator profile with the hot spots ranked. Default False.
        max_seconds: time cap per batch size. Default 3.
    """

    backend: str = "onnxruntime:cpu"
    options: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    data: str | None = None
    seed: int = 0
    profile: bool = False
    max_seconds: float = Field(default=3.0, gt=0)
