"""The predict protocol: request bodies -> validated feeds, outputs -> response bodies.

Bodies:

* ``application/json``: ``{"inputs": {"name": nested list, ...}, "key": "optional sticky key"}`` (a model with
  one input also takes ``{"inputs": nested list}``);
* ``application/x-npy``: one ``.npy`` array (the only input, or ``?input=NAME``);
* ``application/x-safetensors``: a safetensors file, one tensor per input;
* ``image/png`` / ``image/jpeg``: one image, when the signature declares image preprocessing.

Every problem is a 400 ``BadRequest`` that names the input and what is wrong with it.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np

from modelyard.deploy.errors import BadRequest
from modelyard.registry.signature import Signature, TensorSpec

NPY_MAGIC = b"\x93NUMPY"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
# curl sends form-urlencoded unless told otherwise: read it as JSON rather than refusing it
JSON_TYPES = ("application/json", "text/json", "application/x-www-form-urlencoded", "text/plain")
NPY_TYPES = ("application/x-npy", "application/npy")
SAFETENSORS_TYPES = ("application/x-safetensors", "application/safetensors")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/jpg")
_FLOAT_KINDS = "f"
_INT_KINDS = "iu"


@dataclass
class Decoded:
    arrays: dict[str, np.ndarray]
    key: str | None
    from_json: bool


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def decode(body: bytes, content_type: str | None, signature: Signature, input_name: str | None = None) -> Decoded:
    """Turn a request body into named arrays (not yet checked against the signature)."""
    kind = media_type(content_type)
    if not body:
        raise BadRequest("empty request body: send JSON {\"inputs\": {...}}, a .npy array or an image")
    sniff = kind in ("", "application/octet-stream")
    if kind in IMAGE_TYPES or (sniff and (body[:8] == PNG_MAGIC or body[:3] == JPEG_MAGIC)):
        return Decoded(_decode_image(body, signature), None, False)
    if kind in NPY_TYPES or (sniff and body[:6] == NPY_MAGIC):
        return Decoded({_single_input(signature, input_name): _decode_npy(body)}, None, False)
    if kind in SAFETENSORS_TYPES:
        return Decoded(_decode_safetensors(body), None, False)
    if kind in JSON_TYPES or kind == "" or kind.endswith("+json"):
        return _decode_json(body, signature)
    raise BadRequest(f"unsupported content type {kind!r}: use application/json, application/x-npy, "
                     "application/x-safetensors, image/png or image/jpeg", code="unsupported_media_type",
                     status=415)


def _single_input(signature: Signature, input_name: str | None) -> str:
    if input_name:
        signature_names = [t.name for t in signature.inputs]
        if input_name not in signature_names:
            raise BadRequest(f"unknown input {input_name!r}; the model takes {signature_names}")
        return input_name
    if len(signature.inputs) != 1:
        raise BadRequest(f"a .npy body feeds one input; this model takes {[t.name for t in signature.inputs]}: "
                         "add ?input=NAME or send safetensors/JSON")
    return signature.inputs[0].name


def _decode_npy(body: bytes) -> np.ndarray:
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadRequest(f"body is not a readable .npy array: {exc}") from None


def _decode_safetensors(body: bytes) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load
    except ImportError as exc:  # pragma: no cover - safetensors is in the ml extra
        raise BadRequest(f"safetensors bodies need the safetensors package: {exc}") from None
    try:
        return dict(load(body))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise BadRequest(f"body is not a readable safetensors file: {exc}") from None


def _decode_json(body: bytes, signature: Signature) -> Decoded:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict) or "inputs" not in data:
        raise BadRequest('JSON body must be an object {"inputs": {"name": nested list, ...}}')
    extra = set(data) - {"inputs", "key"}
    if extra:
        raise BadRequest(f"unexpected JSON field(s) {sorted(extra)}: the body takes 'inputs' and 'key'")
    key = data.get("key")
    if key is not None and not isinstance(key, str | int):
        raise BadRequest("'key' must be a string")
    inputs = data["inputs"]
    if isinstance(inputs, list) and len(signature.inputs) == 1:
        inputs = {signature.inputs[0].name: inputs}
    if not isinstance(inputs, dict):
        raise BadRequest(f"'inputs' must map input names to nested lists; the model takes "
                         f"{[t.name for t in signature.inputs]}")
    arrays = {}
    for name, value in inputs.items():
        try:
            array = np.asarray(value)
        except ValueError:
            raise BadRequest(f"input {name!r} is not a rectangular array (rows of different lengths)") from None
        if array.dtype == object:
            raise BadRequest(f"input {name!r} is not a rectangular array of numbers")
        arrays[name] = array
    return Decoded(arrays, None if key is None else str(key), True)


def _decode_image(body: bytes, signature: Signature) -> dict[str, np.ndarray]:
    if signature.preprocessing is None:
        raise BadRequest("this model takes no images: its signature declares no image preprocessing")
    from modelyard.deploy.images import decode_image, preprocess

    pixels = decode_image(body)
    target = signature.input(signature.image_input)
    return {target.name: preprocess(pixels, signature.preprocessing, target)}


def _check_dtype(name: str, array: np.ndarray, spec: TensorSpec, from_json: bool) -> np.ndarray:
    want = np.dtype("float32") if spec.dtype == "bfloat16" else np.dtype(spec.dtype)
    have = array.dtype
    if have == want:
        return array
    if want.kind in _FLOAT_KINDS and (have.kind in _FLOAT_KINDS or (from_json and have.kind in _INT_KINDS)):
        return array.astype(want)
    if want.kind in _INT_KINDS and have.kind in _INT_KINDS:
        info = np.iinfo(want)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise BadRequest(f"input {name!r} has values outside the range of {spec.dtype}")
        return array.astype(want)
    if want.kind == "b" and have.kind == "b":
        return array
    shown = {"U": "text", "S": "bytes"}.get(have.kind, str(have))
    raise BadRequest(f"input {name!r} has dtype {shown}, the model expects {spec.dtype}")


def validate(signature: Signature, decoded: Decoded) -> tuple[dict[str, np.ndarray], int]:
    """Check names, dtypes and shapes against the signature; returns feeds and the number of rows (dim 0)."""
    expected = [t.name for t in signature.inputs]
    arrays = decoded.arrays
    missing = [n for n in expected if n not in arrays]
    unexpected = [n for n in arrays if n not in expected]
    if unexpected:
        raise BadRequest(f"unexpected input(s) {unexpected}; the model takes {expected}")
    if missing:
        raise BadRequest(f"missing input(s) {missing}; the model takes {expected}")
    feeds, rows = {}, None
    for spec in signature.inputs:
        array = arrays[spec.name]
        if array.dtype.kind in "USO":
            raise BadRequest(f"input {spec.name!r} holds text, the model expects {spec.dtype} numbers")
        if array.ndim != len(spec.shape):
            hint = f" (send a batch: shape ({', '.join(str(d) for d in (1, *array.shape))}))" \
                if array.ndim == len(spec.shape) - 1 else ""
            raise BadRequest(f"input {spec.name!r} has shape {list(array.shape)}, the model expects rank "
                             f"{len(spec.shape)} {spec.describe_shape()}{hint}")
        for axis, (want, got) in enumerate(zip(spec.shape, array.shape, strict=True)):
            if isinstance(want, int) and want != got:
                raise BadRequest(f"input {spec.name!r} has shape {list(array.shape)}, the model expects "
                                 f"{spec.describe_shape()} (dim {axis} must be {want})")
        if array.ndim and array.shape[0] == 0:
            raise BadRequest(f"input {spec.name!r} has no rows")
        if array.ndim:
            if rows is not None and array.shape[0] != rows:
                raise BadRequest(f"input {spec.name!r} has {array.shape[0]} rows, other inputs have {rows}")
            rows = array.shape[0]
        feeds[spec.name] = np.ascontiguousarray(_check_dtype(spec.name, array, spec, decoded.from_json))
    return feeds, rows or 1


def encode_json(outputs: dict[str, np.ndarray], model_ref: str) -> bytes:
    return json.dumps({"outputs": {k: v.tolist() for k, v in outputs.items()}, "model": model_ref},
                      separators=(",", ":")).encode()


def encode_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def encode_safetensors(outputs: dict[str, np.ndarray]) -> bytes:
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in outputs.items()})
