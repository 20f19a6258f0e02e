"""A version's signature: input and output names, dtypes and shapes (ints for fixed dims, names or ``None`` for
dynamic ones), plus optional image preprocessing and task. Read from the artifact itself, never trusted from a
caller, so what a service validates against is what the model really eats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.core.errors import InvalidInput

# ONNX TensorProto element type -> numpy dtype name (8 = string)
_ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string", 9: "bool",
    10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16",
}
_OV_DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16", "f64": "float64", "i64": "int64",
              "i32": "int32", "i16": "int16", "i8": "int8", "u8": "uint8", "u16": "uint16", "u32": "uint32",
              "u64": "uint64", "boolean": "bool", "string": "string"}


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor. ``shape`` entries: an int (fixed), a str (named dynamic dim) or None (unknown)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]

    @property
    def batch_dynamic(self) -> bool:
        return len(self.shape) > 0 and not isinstance(self.shape[0], int)

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict) -> TensorSpec:
        return cls(data["name"], data["dtype"], tuple(data["shape"]))

    def describe_shape(self) -> str:
        # parentheses, not brackets: rich (the CLI's error printer) reads "[batch, 3]" as markup
        return "(" + ", ".join("?" if d is None else str(d) for d in self.shape) + ")"


@dataclass(frozen=True)
class Signature:
    """What a version eats and returns.

    Attributes:
        inputs, outputs: tensors in the model's order.
        preprocessing: how PNG/JPEG bytes become the image input (a ``runtime.spec.Preprocessing`` mapping), or
            None when the model takes no images.
        task: a ``runtime.spec.TaskSpec`` mapping, or None.
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    preprocessing: dict | None = None
    task: dict | None = None

    @property
    def batchable(self) -> bool:
        """True when every input and output has a dynamic first dim: requests can be stacked on it."""
        return all(t.batch_dynamic for t in self.inputs) and all(t.batch_dynamic for t in self.outputs)

    @property
    def class_names(self) -> list[str] | None:
        """The class names of a classifier (index ``i`` of its prediction is ``class_names[i]``), when known."""
        if not self.task or self.task.get("type") != "classification":
            return None
        return self.task.get("classes") or None

    @property
    def image_input(self) -> str | None:
        """The input image bytes feed, when the signature declares image preprocessing."""
        if self.preprocessing is None or "text" in self.preprocessing:
            return None
        return self.preprocessing.get("input") or self.inputs[0].name

    @property
    def text(self) -> dict | None:
        """Text preprocessing (``{"tokenizer": folder, "max_length": n, "inputs": [...]}``), when the model takes
        token ids that a service makes from raw strings."""
        return (self.preprocessing or {}).get("text")

    def input(self, name: str) -> TensorSpec:
        for tensor in self.inputs:
            if tensor.name == name:
                return tensor
        raise InvalidInput(f"the model has no input {name!r}; its inputs are {[t.name for t in self.inputs]}")

    def to_dict(self) -> dict:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "batchable": self.batchable,
            "preprocessing": self.preprocessing,
            "task": self.task,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Signature:
        return cls(
            tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
            data.get("preprocessing"),
            data.get("task"),
        )


def _onnx_tensor(value) -> TensorSpec:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return TensorSpec(value.name, kind or "unknown", ())
    tensor = value.type.tensor_type
    dims: list[int | str | None] = []
    for dim in tensor.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return TensorSpec(value.name, _ONNX_DTYPES.get(tensor.elem_type, f"onnx-type-{tensor.elem_type}"), tuple(dims))


def onnx_signature(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Inputs (initializers excluded) and outputs of an ONNX file, read without loading external weights."""
    inputs, outputs, _, _ = _onnx_signature_and_classes(path)
    return inputs, outputs


def _onnx_signature_and_classes(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...], list | None,
                                                     dict | None]:
    """Also the class names a Modelyard-trained model carries in its metadata (``modelyard.classes``), if any, and
    the detection task a Modelyard detector declares (``modelyard.task: "detection"`` + ``modelyard.postprocess``)."""
    import json

    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise InvalidInput(f"{path.name} is not a readable ONNX model: {type(exc).__name__}") from None
    initializers = {init.name for init in model.graph.initializer}
    inputs = tuple(_onnx_tensor(v) for v in model.graph.input if v.name not in initializers)
    outputs = tuple(_onnx_tensor(v) for v in model.graph.output)
    if not inputs or not outputs:
        raise InvalidInput(f"{path.name}: an ONNX model must declare at least one input and one output")
    classes = None
    props = {prop.key: prop.value for prop in model.metadata_props}
    if "modelyard.classes" in props:
        try:
            value = json.loads(props["modelyard.classes"])
        except ValueError:
            value = None
        if isinstance(value, list) and value and all(isinstance(c, str) for c in value):
            classes = value
    elif "names" in props:
        classes = _ultralytics_names(props["names"])
    detection = None
    try:
        if json.loads(props.get("modelyard.task", "null")) == "detection":
            detection = {"type": "detection", "postprocess": json.loads(props.get("modelyard.postprocess", "{}")),
                         "letterbox": json.loads(props.get("modelyard.letterbox", "null"))}
    except ValueError:
        detection = None
    return inputs, outputs, classes, detection


def _ultralytics_names(text: str) -> list[str] | None:
    """The class names an Ultralytics export records (``names``: a Python dict literal ``{0: 'person', ...}``)."""
    import ast

    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, dict) and value and sorted(value) == list(range(len(value))) \
            and all(isinstance(v, str) for v in value.values()) and len(set(value.values())) == len(value):
        return [value[i] for i in range(len(value))]
    return None


def _ov_tensor(port, fallback: str) -> TensorSpec:
    names = port.get_names()
    name = port.get_any_name() if names else fallback
    dims: list[int | str | None] = []
    shape = port.get_partial_shape()
    if shape.rank.is_dynamic:
        raise InvalidInput(f"OpenVINO tensor {name!r} has a dynamic rank; a signature needs a fixed rank")
    for dim in shape:
        dims.append(None if dim.is_dynamic else int(dim.get_length()))
    element = port.get_element_type().get_type_name()
    return TensorSpec(name, _OV_DTYPES.get(element, element), tuple(dims))


def openvino_signature(xml: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Inputs and outputs of an OpenVINO IR (``.xml`` with its ``.bin`` beside it)."""
    import openvino as ov

    if not xml.with_suffix(".bin").is_file():
        raise InvalidInput(f"OpenVINO IR {xml.name} has no {xml.with_suffix('.bin').name} beside it")
    try:
        model = ov.Core().read_model(str(xml))
    except RuntimeError as exc:
        raise InvalidInput(f"OpenVINO cannot read {xml.name}: {str(exc).splitlines()[0]}") from None
    inputs = tuple(_ov_tensor(p, f"input_{i}") for i, p in enumerate(model.inputs))
    outputs = tuple(_ov_tensor(p, f"output_{i}") for i, p in enumerate(model.outputs))
    return inputs, outputs


def read_signature(path: Path, fmt: str, preprocessing: dict | None = None, task: dict | None = None) -> Signature:
    """The signature of an artifact of format ``onnx`` or ``openvino``, with validated preprocessing and task."""
    classes = None
    if fmt == "onnx":
        inputs, outputs, classes, detection = _onnx_signature_and_classes(path)
        if detection is not None:
            letterbox = detection.pop("letterbox")
            if task is None:
                task = detection  # a detector Modelyard exported declares how its outputs read
            if isinstance(letterbox, dict) and isinstance(preprocessing, dict) and "resize" not in preprocessing:
                # and how its images were letterboxed in training: serving must do the same
                preprocessing = {**preprocessing, "resize": "letterbox",
                                 "letterbox_align": "center" if letterbox.get("align", "center") == "center"
                                 else "top-left",
                                 "pad_value": letterbox.get("pad_value", 114)}
    elif fmt == "openvino":
        inputs, outputs = openvino_signature(path)
    elif fmt in ("hf", "gguf", "peft"):
        # a language model takes text and makes text; its service speaks the OpenAI protocol, not tensors
        inputs, outputs = (TensorSpec("prompt", "string", ("batch",)),), (TensorSpec("text", "string", ("batch",)),)
        return Signature(inputs, outputs, None, None)
    else:
        raise InvalidInput(f"cannot read the signature of a {fmt!r} artifact (onnx or openvino)")
    if classes and isinstance(task, dict) and task.get("type") in ("classification", "detection") \
            and not task.get("classes"):
        # a model Modelyard trained names its classes in its metadata: replies can carry names, not only indices
        task = {**task, "classes": classes}
    return Signature(inputs, outputs, check_preprocessing(preprocessing, inputs), check_task(task, outputs))


def check_preprocessing(data: Any, inputs: tuple[TensorSpec, ...]) -> dict | None:
    """Validate image preprocessing against the inputs: a rank-4 image input with a known or given size."""
    if data is None:
        return None
    if isinstance(data, dict) and "text" in data:
        return {"text": _check_text_preprocessing(data, inputs)}
    from pydantic import ValidationError

    from modelyard.runtime.spec import Preprocessing

    try:
        pre = Preprocessing.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"preprocessing.{where}: {first['msg']}") from None
    target = next((t for t in inputs if t.name == pre.input), None) if pre.input else inputs[0]
    if target is None:
        raise InvalidInput(f"preprocessing.input: the model has no input {pre.input!r}")
    if len(target.shape) != 4:
        raise InvalidInput(f"preprocessing: image input {target.name!r} must have rank 4, it has shape "
                           f"{target.describe_shape()}")
    h, w = (target.shape[2], target.shape[3]) if pre.layout == "NCHW" else (target.shape[1], target.shape[2])
    if pre.size is None and not (isinstance(h, int) and isinstance(w, int)):
        raise InvalidInput(f"preprocessing.size: input {target.name!r} has a dynamic height/width; give the size")
    channels = target.shape[1] if pre.layout == "NCHW" else target.shape[3]
    if isinstance(channels, int) and channels not in (1, 3):
        raise InvalidInput(f"preprocessing: image input {target.name!r} has {channels} channels (1 or 3 expected); "
                           "is the layout right?")
    data = {k: v for k, v in pre.model_dump(mode="json").items()
            if v is not None or k not in ("resize", "letterbox_align", "pad_value")}
    data["input"] = target.name
    return data


TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _check_text_preprocessing(data: dict, inputs: tuple[TensorSpec, ...]) -> dict:
    """Text preprocessing: a tokenizer folder stored with the version, a maximum length, and which token inputs
    it makes; each must be an int64 ``[batch, sequence]`` input of the model."""
    if set(data) != {"text"} or not isinstance(data["text"], dict):
        raise InvalidInput('text preprocessing is {"text": {"tokenizer": FOLDER, "max_length": N, "inputs": [...]}}')
    text = data["text"]
    unknown = set(text) - {"tokenizer", "max_length", "inputs", "fast"}
    if unknown:
        raise InvalidInput(f"preprocessing.text: unknown field(s) {sorted(unknown)}")
    tokenizer = text.get("tokenizer")
    if not isinstance(tokenizer, str) or not tokenizer or ".." in tokenizer.split("/") or tokenizer.startswith("/"):
        raise InvalidInput("preprocessing.text.tokenizer: the stored folder of the tokenizer files, e.g. 'tokenizer'")
    max_length = text.get("max_length", 512)
    if not isinstance(max_length, int) or isinstance(max_length, bool) or not 1 <= max_length <= 32768:
        raise InvalidInput("preprocessing.text.max_length: a whole number from 1 to 32768")
    names = text.get("inputs")
    by_name = {t.name: t for t in inputs}
    if not isinstance(names, list) or not names or any(n not in TOKEN_INPUTS for n in names):
        raise InvalidInput(f"preprocessing.text.inputs: a list of {', '.join(TOKEN_INPUTS)}")
    for name in names:
        spec = by_name.get(name)
        if spec is None or spec.dtype != "int64" or len(spec.shape) != 2:
            raise InvalidInput(f"preprocessing.text.inputs: {name!r} must be an int64 [batch, sequence] input of the "
                               "model")
    return {"tokenizer": tokenizer, "max_length": max_length, "inputs": list(names), "fast": bool(text.get("fast"))}


def check_task(data: Any, outputs: tuple[TensorSpec, ...]) -> dict | None:
    if data is None:
        return None
    from pydantic import ValidationError

    from modelyard.runtime.spec import TaskSpec

    try:
        task = TaskSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"task.{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    if task.output and task.output not in {t.name for t in outputs}:
        raise InvalidInput(f"task.output: the model has no output {task.output!r}")
    if task.type == "detection":
        _check_postprocess(task, outputs)
    elif task.classes is not None and task.type == "classification":  # a detector's classes are not an axis
        target = next(t for t in outputs if t.name == task.output) if task.output else outputs[0]
        width = target.shape[-1] if len(target.shape) >= 2 else None
        if isinstance(width, int) and width != len(task.classes):
            raise InvalidInput(f"task.classes: {len(task.classes)} class name(s) for output {target.name!r} of "
                               f"{width} scores per row")
    data = task.model_dump(mode="json")
    for key in ("classes", "postprocess"):
        if data[key] is None:
            del data[key]  # signatures stored before class names and detectors existed read the same
    return data


def _check_postprocess(task, outputs: tuple[TensorSpec, ...]) -> None:
    """A detection task's outputs are the ones its post-processor reads, of the ranks it reads."""
    from modelyard.runtime.spec import Postprocess

    if task.postprocess is None:
        task.postprocess = Postprocess()
    post = task.postprocess
    by_name = {t.name: t for t in outputs}
    if post.kind == "yolov8":
        name = post.output or outputs[0].name
        if name not in by_name:
            raise InvalidInput(f"task.postprocess.output: the model has no output {name!r}")
        shape = by_name[name].shape
        if len(shape) != 3:
            raise InvalidInput(f"task.postprocess: a yolov8 output is (batch, 4 + classes, anchors); {name!r} has "
                               f"shape {by_name[name].describe_shape()}")
        if task.classes is not None and isinstance(shape[1], int) and shape[1] != 4 + len(task.classes):
            raise InvalidInput(f"task.classes: {len(task.classes)} class name(s) for output {name!r} of {shape[1]} "
                               "rows (4 box coordinates + one score per class)")
        return
    for field, rank in (("boxes", 3), ("scores", 2), ("labels", 2)):
        name = getattr(post, field)
        if name not in by_name:
            raise InvalidInput(f"task.postprocess.{field}: the model has no output {name!r} (it returns "
                               f"{', '.join(by_name)}); a 'boxes' detector returns boxes, scores and classes")
        if len(by_name[name].shape) != rank:
            raise InvalidInput(f"task.postprocess: output {name!r} has shape {by_name[name].describe_shape()}, "
                               f"expected rank {rank}")
