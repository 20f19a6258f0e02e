"""ModelSpec: how a user names a model and its inputs, on disk as YAML or JSON.

A spec names exactly one source: a PyTorch factory (``entrypoint: "pkg.module:factory"`` + ``kwargs`` + optional
``weights``), an ONNX file (``onnx:``) or an OpenVINO IR (``openvino:``). ``inputs`` say what the model eats, with
named dynamic dims (``[batch, 3, 224, 224]``) whose concrete values for generated feeds come from ``dims``.

Example (``resnet.yaml``)::

    name: tiny-resnet
    entrypoint: modelyard.runtime.zoo:hf_resnet
    kwargs: {num_labels: 10}
    inputs:
      - {name: pixel_values, shape: [batch, 3, 32, 32], dtype: float32, range: [-1, 1]}
    outputs: [logits]
    dims: {batch: 2}
    task: {type: classification}        # or just: task: classification

Relative paths (``weights``, ``onnx``, ``openvino``, ``dataset``, ``inputs[].data``) are resolved against the spec
file's folder. Validation errors are ``InvalidInput`` naming the field (``spec.inputs[0].dtype: ...``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from modelyard.core.errors import InvalidInput, NotFound

DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int8", "uint8", "bool", "string")
TASKS = ("classification", "regression", "detection", "embedding", "generic")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class InputSpec(BaseModel):
    """One model input.

    Args:
        name: the input's name (the ONNX input name; for torch, the forward argument it is passed as, in order).
        shape: ints for fixed dims, identifiers for named dynamic dims (``batch``, ``seq``).
        dtype: one of ``DTYPES``. Default ``float32``. ``string`` is a text tensor (ONNX ``tensor(string)``, fed as
            a numpy object array of ``str``), e.g. a categorical column of a tabular model.
        range: ``[low, high]`` for generated feeds (floats uniform, ints in ``[low, high)``). Default ``[0, 1]`` for
            floats and ``[0, 10)`` for ints.
        data: optional ``.npy`` file whose first axis enumerates samples for this input.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    shape: list[int | str]
    dtype: Literal["float32", "float16", "bfloat16", "float64", "int64", "int32", "int8", "uint8", "bool",
                   "string"] = "float32"
    range: tuple[float, float] | None = None
    data: str | None = None

    @field_validator("shape")
    @classmethod
    def _dims_are_positive_or_named(cls, shape: list[int | str]) -> list[int | str]:
        for dim in shape:
            if isinstance(dim, int) and dim < 1:
                raise ValueError(f"dimension {dim} must be at least 1")
            if isinstance(dim, str) and not _IDENT.match(dim):
                raise ValueError(f"named dimension {dim!r} must be an identifier such as 'batch'")
        return shape

    @field_validator("range")
    @classmethod
    def _range_is_ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] < value[1]:
            raise ValueError(f"range {list(value)} must be [low, high] with low < high")
        return value

    def concrete_shape(self, dims: dict[str, int]) -> tuple[int, ...]:
        """The shape with named dims replaced by ``dims`` (1 when unset)."""
        return tuple(d if isinstance(d, int) else int(dims.get(d, 1)) for d in self.shape)


class Postprocess(BaseModel):
    """How a detector's outputs become boxes (see :mod:`modelyard.runtime.detection`).

    Args:
        kind: ``boxes`` (the graph decodes: outputs ``boxes`` (N, K, 4) xyxy in input pixels, ``scores`` (N, K),
            ``classes`` (N, K)) or ``yolov8`` (one (N, 4 + C, A) output of ``cx, cy, w, h`` + class scores, decoded
            and NMS'd in numpy). Default ``boxes``.
        boxes, scores, labels: the output names of a ``boxes`` detector. Default ``boxes``, ``scores``, ``classes``.
        output: the output of a ``yolov8`` detector. Default: the first output.
        score_threshold: boxes scoring less are dropped (a request's ``?threshold=`` overrides it). Default 0.25.
        iou_threshold: the NMS overlap of a ``yolov8`` detector. Default 0.45.
        max_detections: most boxes per image. Default 100.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["boxes", "yolov8"] = "boxes"
    boxes: str = "boxes"
    scores: str = "scores"
    labels: str = "classes"
    output: str | None = None
    score_threshold: float = Field(default=0.25, ge=0, le=1)
    iou_threshold: float = Field(default=0.45, gt=0, le=1)
    max_detections: int = Field(default=100, ge=1, le=10_000)


class TaskSpec(BaseModel):
    """What the model's prediction means, turning on task-level agreement metrics.

    Args:
        type: classification (top-1/top-k agreement), regression (relative error of the prediction), embedding
            (cosine of the embedding), detection (box-level agreement) or generic (tensor metrics only).
        output: the output carrying the prediction. Default: the first output.
        top_k: k of the top-k agreement. Default 5.
        classes: for classification, the class names in the order of the output's last axis (index ``i`` is
            ``classes[i]``); for detection, the names of the class indices the detector returns. Services and
            batch jobs then answer with names as well as indices.
        postprocess: for detection, how the outputs become boxes (:class:`Postprocess`; default ``kind: boxes``).
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["classification", "regression", "detection", "embedding", "generic"]
    output: str | None = None
    top_k: int = Field(default=5, ge=1)
    classes: list[str] | None = Field(default=None, min_length=1, max_length=100_000)
    postprocess: Postprocess | None = None

    @model_validator(mode="after")
    def _classes_fit(self) -> TaskSpec:
        if self.classes is not None:
            if self.type not in ("classification", "detection"):
                raise ValueError(f"classes apply to a classification or detection task, not {self.type!r}")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError("classes must be unique")
        if self.postprocess is not None and self.type != "detection":
            raise ValueError(f"postprocess applies to a detection task, not {self.type!r}")
        return self


class Preprocessing(BaseModel):
    """How image files become an input tensor (``--data`` pointing at an image folder).

    Args:
        input: the input images feed. Default: the first input.
        size: ``[height, width]`` to resize to (nearest neighbour). Default: the input's fixed H, W.
        scale: multiplies 0..255 pixel values first. Default 1/255.
        mean, std: per-channel normalisation after scaling. Default 0 and 1.
        layout: ``NCHW`` or ``NHWC``. Default ``NCHW``.
        resize: ``stretch`` (default) or ``letterbox``: scale to fit keeping the aspect ratio and pad (detectors;
            their boxes are mapped back to the original image).
        letterbox_align: where a letterboxed image sits: ``center`` (default) or ``top-left`` (padding right and
            below, as nudenet's detector was trained).
        pad_value: the 0..255 value letterbox padding gets. Default 114.
    """

    model_config = ConfigDict(extra="forbid")

    input: str | None = None
    size: tuple[int, int] | None = None
    scale: float = 1.0 / 255.0
    mean: list[float] = Field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = Field(default_factory=lambda: [1.0, 1.0, 1.0])
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    # None leaves these out of a stored signature, so signatures without letterboxing read as before
    resize: Literal["stretch", "letterbox"] | None = None
    letterbox_align: Literal["center", "top-left"] | None = None
    pad_value: float | None = Field(default=None, ge=0, le=255)


class ModelSpec(BaseModel):
    """A model and its inputs. See the module docstring for the file format."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    entrypoint: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    weights: str | None = None
    onnx: str | None = None
    openvino: str | None = None
    inputs: list[InputSpec] = Field(min_length=1)
    outputs: list[str] | None = None
    dims: dict[str, int] = Field(default_factory=dict)
    dataset: str | None = None
    preprocessing: Preprocessing | None = None
    task: TaskSpec | None = None

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint_shape(cls, value: str | None) -> str | None:
        if value is not None:
            module, _, attr = value.partition(":")
            if not module or not attr:
                raise ValueError(f"{value!r} must look like 'package.module:factory'")
        return value

    @field_validator("task", mode="before")
    @classmethod
    def _task_shorthand(cls, value: Any) -> Any:
        # `task: classification` is the common case; it means `task: {type: classification}`
        return {"type": value} if isinstance(value, str) else value

    @field_validator("dims")
    @classmethod
    def _dims_positive(cls, value: dict[str, int]) -> dict[str, int]:
        for key, size in value.items():
            if size < 1:
                raise ValueError(f"dims.{key}={size} must be at least 1")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        sources = [k for k in ("entrypoint", "onnx", "openvino") if getattr(self, k)]
        if len(sources) != 1:
            raise ValueError(
                "exactly one of 'entrypoint', 'onnx' or 'openvino' must be set"
                + (f" (got {', '.join(sources)})" if sources else "")
            )
        if self.weights and not self.entrypoint:
            raise ValueError("'weights' only applies to an 'entrypoint' model")
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError(f"input names must be unique, got {names}")
        if self.task and self.task.output and self.outputs and self.task.output not in self.outputs:
            raise ValueError(f"task.output {self.task.output!r} is not one of outputs {self.outputs}")
        return self

    # -- derived -----------------------------------------------------------------------------------------------

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @property
    def source_format(self) -> str:
        """``torch``, ``onnx`` or ``openvino``."""
        return "torch" if self.entrypoint else ("onnx" if self.onnx else "openvino")

    def resolve(self, path: str | None) -> Path | None:
        """A spec-relative path made absolute (``None`` stays ``None``)."""
        if path is None:
            return None
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self._base_dir / p).resolve()

    def dim_values(self) -> dict[str, int]:
        return dict(self.dims)

    def input(self, name: str) -> InputSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise InvalidInput(f"spec has no input {name!r}; inputs are {[i.name for i in self.inputs]}")

    def source(self) -> Artifact:
        """The artifact the spec names: a torch factory, an ONNX file or an OpenVINO IR."""
        if self.entrypoint:
            return Artifact("torch", None, self)
        path = self.resolve(self.onnx or self.openvino)
        return Artifact(self.source_format, path, self)

    def content_hash(self) -> str:
        """sha256 of the spec's JSON plus the bytes of the files it names: the cache key of its source."""
        digest = hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode())
        for rel in (self.weights, self.onnx, self.openvino):
            path = self.resolve(rel)
            if path is not None and path.is_file():
                digest.update(file_sha256(path).encode())
                if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
                    digest.update(file_sha256(path.with_suffix(".bin")).encode())
        return digest.hexdigest()

    def with_base_dir(self, base_dir: Path) -> ModelSpec:
        self._base_dir = Path(base_dir).resolve()
        return self


@dataclass(frozen=True)
class Artifact:
    """A model in one format: ``torch`` (built from the spec's entrypoint), ``onnx`` (a ``.onnx`` file),
    ``openvino`` (an IR ``.xml`` with its ``.bin``) or ``torch_export`` (a ``.pt2`` ExportedProgram).

    ``path`` is ``None`` only for ``torch``. ``spec`` carries inputs, dims and task whatever the format.
    """

    format: str
    path: Path | None
    spec: ModelSpec

    def describe(self) -> str:
        return f"{self.format}:{self.path}" if self.path else f"{self.format}:{self.spec.entrypoint}"

    def content_hash(self) -> str:
        """sha256 identifying this artifact's content (the spec's hash for ``torch``)."""
        if self.path is None:
            return self.spec.content_hash()
        digest = hashlib.sha256(self.format.encode())
        digest.update(file_sha256(self.path).encode())
        if self.path.suffix == ".xml" and self.path.with_suffix(".bin").is_file():
            digest.update(file_sha256(self.path.with_suffix(".bin")).encode())
        return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_from_path(path: str | Path, spec: ModelSpec) -> Artifact:
    """An artifact a user converted themselves (``--target-model``), typed by its suffix."""
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise NotFound(f"model file {p} does not exist")
    formats = {".onnx": "onnx", ".xml": "openvino", ".pt2": "torch_export"}
    if p.suffix not in formats:
        raise InvalidInput(f"cannot tell the format of {p.name}: expected .onnx, .xml (OpenVINO IR) or .pt2")
    return Artifact(formats[p.suffix], p, spec)


def _field_path(loc: tuple) -> str:
    out = "spec"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def parse_spec(data: Any, base_dir: Path | None = None) -> ModelSpec:
    """Validate a dict as a ModelSpec; errors are ``InvalidInput`` naming each bad field."""
    if not isinstance(data, dict):
        raise InvalidInput(f"spec must be a mapping, got {type(data).__name__}")
    try:
        spec = ModelSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{_field_path(tuple(err['loc']))}: {message}")
        raise InvalidInput("invalid model spec: " + "; ".join(problems)) from None
    return spec.with_base_dir(base_dir or Path.cwd())


def load_spec(path: str | Path) -> ModelSpec:
    """Read a ModelSpec from a ``.yaml``/``.yml``/``.json`` file; relative paths resolve against its folder."""
    import yaml

    p = Path(path).expanduser()
    if not p.is_file():
        raise NotFound(f"spec file {p} does not exist")
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}") from None
    return parse_spec(data, base_dir=p.resolve().parent)
