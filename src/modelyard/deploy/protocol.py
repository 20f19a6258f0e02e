"""The predict protocol: request bodies -> validated feeds, outputs -> response bodies.

Bodies:

* ``application/json``: ``{"inputs": {"name": nested list, ...}, "key": "optional sticky key"}`` (a model with
  one input also takes ``{"inputs": nested list}``);
* ``application/x-npy``: one ``.npy`` array (the only input, or ``?input=NAME``);
* ``application/x-safetensors``: a safetensors file, one tensor per input;
* ``image/png`` / ``image/jpeg``: one image, when the signature declares image preprocessing.

Every problem is a 400 ``BadRequest`` that names the input and what is wrong with it.

JSON is standard JSON both ways (:mod:`modelyard.core.jsonsafe`): a request's ``NaN``/``Infinity`` literals, numbers
beyond a double, ``true``/``false`` among numbers and nesting deeper than 64 levels are refused; ``null`` is a
missing value where the input takes missing values (it becomes NaN), and refused elsewhere. Non-finite input values
(from any body type) and float64 values beyond a float32/float16 input's range are refused by name. An answer's
NaN and +-inf outputs are written as ``null``. A request carries at most :data:`MAX_ROWS` rows.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass

import numpy as np

from modelyard.core.errors import PayloadTooLarge
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
MAX_ROWS = 10_000  # rows per request: a bigger job is a batch job (modelyard batch), not one predict call
# NOTE: parsing JSON holds the GIL the whole time and costs ~10x its size in memory: 60 MB bodies starved a
# replica's health check until the supervisor killed it. Binary bodies (.npy, safetensors) have no such limit.
MAX_JSON_BYTES = 16 * 1024 * 1024


@dataclass
class Decoded:
    arrays: dict[str, np.ndarray]
    key: str | None
    from_json: bool
    image_size: tuple[int, int] | None = None  # (height, width) of an image body: a detector's boxes map back to it


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def is_json(kind: str) -> bool:
    """Whether a body of media type ``kind`` (as :func:`media_type` gives it) is read as JSON."""
    return kind in JSON_TYPES or kind == "" or kind.endswith("+json")


def costly(body: bytes, content_type: str | None, small: int = 64 * 1024) -> bool:
    """Whether decoding ``body`` may take long enough to be kept off a server's event loop: an image (a few KB of
    PNG can decode to a GiB), or any body over ``small`` bytes."""
    kind = media_type(content_type)
    return len(body) > small or kind in IMAGE_TYPES or body[:8] == PNG_MAGIC or body[:3] == JPEG_MAGIC


def decode(body: bytes, content_type: str | None, signature: Signature, input_name: str | None = None) -> Decoded:
    """Turn a request body into named arrays (not yet checked against the signature)."""
    kind = media_type(content_type)
    if not body:
        raise BadRequest("empty request body: send JSON {\"inputs\": {...}}, a .npy array or an image")
    sniff = kind in ("", "application/octet-stream")
    if kind in IMAGE_TYPES or (sniff and (body[:8] == PNG_MAGIC or body[:3] == JPEG_MAGIC)):
        arrays, image_size = _decode_image(body, signature)
        return Decoded(arrays, None, False, image_size)
    if kind in NPY_TYPES or (sniff and body[:6] == NPY_MAGIC):
        return Decoded({_single_input(signature, input_name): _decode_npy(body)}, None, False)
    if kind in SAFETENSORS_TYPES:
        return Decoded(_decode_safetensors(body), None, False)
    if is_json(kind):
        if len(body) > MAX_JSON_BYTES:
            raise PayloadTooLarge(f"a JSON body may be at most {MAX_JSON_BYTES} bytes (this one is {len(body)}); "
                                  "send larger inputs as application/x-npy or application/x-safetensors")
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


# the header numpy writes for a plain C-order array, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (1, 4), }
_NPY_HEADER = re.compile(rb"\{'descr': '([<>|=][a-z]\d+)', 'fortran_order': False, 'shape': \(([\d, ]*)\), \} *\n")
_NPY_PLAIN_KINDS = "biuf"
_NPY_ALIGN = 64


def _decode_npy(body: bytes) -> np.ndarray:
    fast = _plain_npy(body)
    if fast is not None:
        return fast
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadRequest(f"body is not a readable .npy array: {exc}") from None


def _plain_npy(body: bytes) -> np.ndarray | None:
    """A version-1 ``.npy`` of a plain numeric C-order array, read without ``np.load``'s ``ast.literal_eval`` of
    its header (a tenth of a millisecond a request); None for anything else, which ``np.load`` then reads."""
    if body[:8] != NPY_MAGIC + b"\x01\x00" or len(body) < 10:
        return None
    start = 10 + int.from_bytes(body[8:10], "little")
    match = _NPY_HEADER.fullmatch(body, 10, start)
    if match is None:
        return None
    dtype = np.dtype(match.group(1).decode())
    if dtype.kind not in _NPY_PLAIN_KINDS:
        return None
    shape = tuple(int(d) for d in match.group(2).split(b",") if d.strip())
    count = math.prod(shape)
    if len(body) - start != count * dtype.itemsize:
        return None
    return np.frombuffer(body, dtype, count, start).reshape(shape).copy()  # writable, like np.load's


def _decode_safetensors(body: bytes) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load
    except ImportError as exc:  # pragma: no cover - safetensors is in the ml extra
        raise BadRequest(f"safetensors bodies need the safetensors package: {exc}") from None
    try:
        return dict(load(body))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise BadRequest(f"body is not a readable safetensors file: {exc}") from None


def _refuse_constant(name: str):
    raise BadRequest(f"{name} is not JSON: send null for a missing value")


def _loads(body: bytes):
    """Parse a JSON body: orjson (8x the standard parser on a 250 KB tensor), and the standard parser, with its
    words for what is wrong (``NaN is not JSON``), for a body orjson refuses."""
    import orjson

    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    from modelyard.core.jsonsafe import MAX_DEPTH, nests_deeper_than

    if nests_deeper_than(body, MAX_DEPTH):
        raise BadRequest(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        # NOTE: numbers beyond a double (1e400) and lone surrogates pass here as they always did: validate refuses
        # the infinities by name
        return json.loads(body, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None


def _decode_json(body: bytes, signature: Signature) -> Decoded:
    from modelyard.core.jsonsafe import MAX_DEPTH, nests_deeper_than

    try:
        decoded = _arrays_of(_loads(body), body, signature)
        deepest = max((a.ndim for a in decoded.arrays.values()), default=0)
    except BadRequest:
        # orjson parses up to 1,024 levels: a body nested deeper than ours is refused for that, whatever else
        if nests_deeper_than(body, MAX_DEPTH):
            raise BadRequest(f"JSON nested deeper than {MAX_DEPTH} levels") from None
        raise
    if deepest + 2 > MAX_DEPTH and nests_deeper_than(body, MAX_DEPTH):  # an array's dims plus the envelope
        raise BadRequest(f"JSON nested deeper than {MAX_DEPTH} levels")
    return decoded


def _arrays_of(data, body: bytes, signature: Signature) -> Decoded:
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
    maybe_bools = may_spell_bools(body)
    for name, value in inputs.items():
        if isinstance(value, list) and len(value) > MAX_ROWS:  # before numpy copies every element
            raise BadRequest(f"input {name!r} has {len(value)} rows; one request takes at most {MAX_ROWS} "
                             "(split it, or run a batch job)")
        try:
            array = np.asarray(value)
        except ValueError:
            raise BadRequest(f"input {name!r} is not a rectangular array (rows of different lengths)") from None
        if array.dtype == object and all(isinstance(v, str) or v is None for v in array.flat) \
                and any(isinstance(v, str) for v in array.flat):
            pass  # text, maybe with nulls (numbers mixed in would have made numpy a str array): validate decides
        elif array.dtype == object:
            array = _with_missing(name, value)
        elif maybe_bools and array.dtype.kind in "iuf" and _holds_bool(value):
            raise BadRequest(f"input {name!r} mixes true/false with numbers: send numbers (1/0)")
        arrays[name] = array
    return Decoded(arrays, None if key is None else str(key), True)


_TRU, _ALS = (int.from_bytes(text, "big") for text in (b"tru", b"als"))


def may_spell_bools(body: bytes) -> bool:
    """Whether a JSON body may hold ``true``/``false`` (numpy reads them as 1/0 among numbers): an ``e`` after
    ``tru`` or ``als``, found with numpy in ~0.05 ms on a 250 KB body where ``b"true" in body`` scans took 0.5 ms.
    A string holding those letters answers True too, and the caller then looks at the values themselves."""
    view = np.frombuffer(body, np.uint8)
    ends = np.flatnonzero(view[3:] == ord("e")) + 3
    if not ends.size:
        return False
    before = (view[ends - 3].astype(np.int32) << 16) | (view[ends - 2].astype(np.int32) << 8) | view[ends - 1]
    return bool(np.isin(before, (_TRU, _ALS)).any())


def _with_missing(name: str, value) -> np.ndarray:
    """A nested list of numbers with nulls -> float64 with NaN where the nulls were (an ``object`` array
    :func:`validate` accepts only for an input that takes missing values)."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadRequest(f"input {name!r} is not a rectangular array of numbers") from None
    if _holds_bool(value):
        raise BadRequest(f"input {name!r} mixes true/false with numbers: send numbers (1/0)")
    return MissingValues(array)


class MissingValues(np.ndarray):
    """A float64 array whose NaNs stand for JSON nulls (an ndarray subclass: a marker, no behaviour)."""

    def __new__(cls, array: np.ndarray):
        return np.asarray(array).view(cls)


def _holds_bool(value) -> bool:
    """True when a nested list holds a JSON true/false (Python bools pass as numbers in numpy)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool):
            return True
    return False


def _decode_image(body: bytes, signature: Signature) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
    if signature.image_input is None:
        raise BadRequest("this model takes no images: its signature declares no image preprocessing")
    from modelyard.deploy.images import decode_image, pixel_limit, preprocess, target_size

    target = signature.input(signature.image_input)
    pixels = decode_image(body, pixel_limit(*target_size(signature.preprocessing, target)))
    return {target.name: preprocess(pixels, signature.preprocessing, target)}, (pixels.shape[0], pixels.shape[1])


def _numpy_dtype(spec: TensorSpec) -> np.dtype | None:
    """The numpy dtype a feed of ``spec`` gets (bfloat16 is fed as float32); None for one numpy has no name for."""
    try:
        return np.dtype("float32") if spec.dtype == "bfloat16" else np.dtype(spec.dtype)
    except TypeError:
        return None


def _check_values(name: str, array: np.ndarray, want: np.dtype, missing_ok: bool) -> None:
    """Refuse NaN/inf (NaN is allowed where the input takes missing values) and floats beyond ``want``'s range."""
    if array.dtype.kind not in _FLOAT_KINDS or not array.size:
        return
    finite = np.isfinite(array)
    if not finite.all():
        bad = ~finite & ~np.isnan(array) if missing_ok else ~finite
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise BadRequest(f"input {name!r} has a non-finite value ({array[where]}) at index {list(where)}"
                             + ("" if missing_ok else "; this model takes no missing values"))
    if want.kind in _FLOAT_KINDS and want.itemsize < array.dtype.itemsize:
        limit = np.finfo(want).max
        with np.errstate(invalid="ignore"):
            beyond = np.abs(array) > limit
        if beyond.any():
            where = tuple(int(i) for i in np.argwhere(beyond)[0])
            raise BadRequest(f"input {name!r} has {array[where]:g} at index {list(where)}, beyond the range of "
                             f"{want.name} (+-{limit:.4g})")


def _check_dtype(name: str, array: np.ndarray, spec: TensorSpec, from_json: bool) -> np.ndarray:
    if spec.dtype == "string":
        if array.dtype.kind == "U" or (array.dtype.kind == "O" and all(isinstance(v, str) for v in array.flat)):
            return array.astype(object)  # what onnxruntime takes for tensor(string)
        raise BadRequest(f"input {name!r} takes text (strings, e.g. [[\"a\"]]), got {array.dtype} values")
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


def validate(signature: Signature, decoded: Decoded, missing_ok: frozenset[str] = frozenset(),
             max_rows: int = MAX_ROWS) -> tuple[dict[str, np.ndarray], int]:
    """Check names, dtypes, shapes and values against the signature; returns feeds and the number of rows (dim 0).

    Args:
        missing_ok: the float inputs that take missing values (NaN; ``null`` in JSON), e.g. an AutoML table's
            numeric columns. Others refuse NaN, and every input refuses +-inf.
        max_rows: most rows one request may carry.
    """
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
        if isinstance(array, MissingValues):
            if spec.name not in missing_ok:
                raise BadRequest(f"input {spec.name!r} has null values; this model takes no missing values")
            array = np.asarray(array)
        if spec.dtype == "string" and array.dtype == object and any(v is None for v in array.flat):
            if spec.name not in missing_ok:
                raise BadRequest(f"input {spec.name!r} has null values; send \"\" for a missing text value")
            array = np.where(np.equal(array, None), "", array)  # "" is a text input's missing value
        if array.dtype.kind in "USO" and spec.dtype != "string":
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
            if rows > max_rows:
                raise BadRequest(f"input {spec.name!r} has {rows} rows; one request takes at most {max_rows} "
                                 "(split it, or run a batch job)")
        want = _numpy_dtype(spec)
        if want is not None:
            _check_values(spec.name, array, want, spec.name in missing_ok)
        feeds[spec.name] = np.ascontiguousarray(_check_dtype(spec.name, array, spec, decoded.from_json))
    return feeds, rows or 1


def encode_json(outputs: dict[str, np.ndarray], model_ref: str, predictions: list[dict] | None = None) -> bytes:
    """Standard JSON: NaN and +-inf outputs are written as ``null`` (browsers' JSON.parse rejects NaN);
    ``predictions`` (a classifier's class name, index and score per row) when the version names its classes.

    orjson writes numeric arrays straight from their buffers (no per-request lists: 0.02 ms for 1,000 logits where
    ``tolist`` + ``json.dumps`` took 0.7 ms); other dtypes (text, float16) go through lists."""
    import orjson

    body = {"outputs": {k: _json_ready(v) for k, v in outputs.items()}, "model": model_ref}
    if predictions is not None:
        body["predictions"] = predictions
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def _json_ready(array: np.ndarray):
    array = np.asarray(array)
    if array.ndim == 0:  # orjson would write a one-element list
        value = array.item()
        return None if isinstance(value, float) and not math.isfinite(value) else value
    if array.dtype.kind in "fiub" and array.dtype.itemsize >= 4 or array.dtype.kind in "iub":
        return np.ascontiguousarray(array)
    if array.dtype.kind == "f":  # float16 (and smaller): orjson writes float32/float64 arrays
        return np.ascontiguousarray(array, dtype=np.float32)
    return array.tolist()


def encode_npy(array: np.ndarray) -> bytes:
    """A ``.npy`` file of ``array``; a plain numeric one gets its header written here (``np.save`` builds it with
    ``repr`` and checks, a tenth of a millisecond a reply)."""
    if array.dtype.kind in _NPY_PLAIN_KINDS and array.dtype.fields is None:
        header = ("{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (array.dtype.str, array.shape))
        padding = -(len(NPY_MAGIC) + 4 + len(header) + 1) % _NPY_ALIGN
        if len(header) + padding + 1 < 65536:
            head = (header + " " * padding + "\n").encode("latin1")
            return b"".join([NPY_MAGIC, b"\x01\x00", len(head).to_bytes(2, "little"), head,
                             np.ascontiguousarray(array).tobytes()])
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def encode_safetensors(outputs: dict[str, np.ndarray], predictions: list[dict] | None = None) -> bytes:
    """The safetensors reply; a classifier's ``predictions`` ride in the header's metadata (JSON text)."""
    from safetensors.numpy import save

    metadata = {"predictions": json.dumps(predictions, separators=(",", ":"))} if predictions is not None else None
    return save({k: np.ascontiguousarray(v) for k, v in outputs.items()}, metadata=metadata)
