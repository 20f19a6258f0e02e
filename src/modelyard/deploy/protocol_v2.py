"""The Open Inference Protocol (KServe v2, Triton's HTTP/REST protocol) codec: infer request bodies -> named arrays,
outputs -> infer response bodies, and a version's tensors as the protocol's metadata.

A request is JSON::

    {"id": "optional", "parameters": {"binary_data_output": false, "key": "optional sticky key"},
     "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [1, 2, 3, 4, 5, 6, 7, 8]}],
     "outputs": [{"name": "y", "parameters": {"binary_data": false}}]}

``data`` is flat (row-major) or nested. With the binary tensor data extension the JSON is only the head of the body
(its length in the ``Inference-Header-Content-Length`` header), an input carries ``"parameters": {"binary_data_size":
N}`` instead of ``data``, and its N raw little-endian bytes follow the JSON in input order (``BYTES`` elements as a
4-byte length and the UTF-8 text). Outputs are answered the same way when a request asks (``binary_data`` per
output, or ``binary_data_output`` for all).

An input's datatype must be the model's (``FP64`` data for an ``FP32`` input is refused, as Triton does); its shape
is checked against the signature by :func:`modelyard.deploy.protocol.validate`, like ``/v1/predict``'s.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass

import numpy as np

from modelyard.core.errors import ModelyardError
from modelyard.deploy.errors import BadRequest
from modelyard.deploy.protocol import may_spell_bools
from modelyard.registry.signature import Signature, TensorSpec

HEADER_LENGTH = "inference-header-content-length"
# datatype -> numpy dtype name (the signature's names; BYTES is text)
DATATYPES = {"BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
             "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64", "FP16": "float16",
             "FP32": "float32", "FP64": "float64", "BYTES": "string"}
_DATATYPE_OF = {v: k for k, v in DATATYPES.items()} | {"bfloat16": "FP32"}  # a bfloat16 input is fed float32
_ACCEPTED_KINDS = {"f": "iuf", "i": "iu", "u": "iu", "b": "b"}  # JSON ints are fine for a float tensor


class ModelNotFound(ModelyardError):
    """A model name or version this service does not serve: 404."""

    code = "not_found"
    status = 404


@dataclass
class RequestedOutput:
    name: str
    binary: bool | None  # None: as the request's binary_data_output says


@dataclass
class InferRequest:
    """A parsed infer request: its id, the raw JSON input entries, the outputs asked for and the sticky key."""

    id: str | None
    inputs: list[dict]
    binary: bytes
    outputs: list[RequestedOutput] | None
    binary_output: bool
    key: str | None
    maybe_bools: bool = False  # the JSON head spells true or false somewhere: look for them among numbers


def datatype(dtype: str) -> str:
    """The protocol's datatype of a signature dtype (``float32`` -> ``FP32``)."""
    try:
        return _DATATYPE_OF[dtype]
    except KeyError:
        raise BadRequest(f"dtype {dtype} has no Open Inference Protocol datatype") from None


def array_datatype(array: np.ndarray) -> str:
    return "BYTES" if array.dtype.kind in "OUS" else datatype(array.dtype.name)


def tensor_metadata(spec: TensorSpec) -> dict:
    """A tensor as model metadata lists it: dynamic dims are -1."""
    return {"name": spec.name, "datatype": _DATATYPE_OF.get(spec.dtype, spec.dtype.upper()),
            "shape": [d if isinstance(d, int) else -1 for d in spec.shape]}


def loads(text: bytes):
    """Strict JSON (orjson: no NaN/Infinity literals, no overflowing numbers); a 400 naming the problem."""
    import orjson

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """Split and read the JSON head of an infer request (the tensors are read later, against a signature)."""
    from modelyard.core.jsonsafe import MAX_DEPTH, nests_deeper_than

    if header_length is not None:
        # ASCII digits only: str.isdigit() also takes "\u00b2" (a Latin-1 header byte), which int() refuses
        if not header_length.strip().isascii() or not header_length.strip().isdigit() or \
                int(header_length) > len(body):
            raise BadRequest(f"Inference-Header-Content-Length {header_length!r} is not a length within the "
                             f"{len(body)}-byte body")
        head, binary = body[:int(header_length)], body[int(header_length):]
    else:
        head, binary = body, b""
    if not head:
        raise BadRequest('empty infer request: send {"inputs": [{"name", "datatype", "shape", "data"}]}')
    # NOTE: counting brackets is a memchr pass; the exact depth scan costs 0.3 ms on a 250 KB head, and a flat
    # "data" list (what clients send) never needs it
    if head.count(b"[") + head.count(b"{") > MAX_DEPTH and nests_deeper_than(head, MAX_DEPTH):
        raise BadRequest(f"JSON nested deeper than {MAX_DEPTH} levels")
    data = loads(head)
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list) or not data["inputs"]:
        raise BadRequest('an infer request is an object {"inputs": [{"name", "datatype", "shape", "data"}, ...]}')
    parameters = _parameters(data, "the request")
    outputs = None
    if data.get("outputs") is not None:
        if not isinstance(data["outputs"], list):
            raise BadRequest("'outputs' must be a list of {\"name\": ...}")
        outputs = []
        for entry in data["outputs"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise BadRequest("each requested output needs a 'name'")
            as_binary = _parameters(entry, f"output {entry['name']!r}").get("binary_data")
            outputs.append(RequestedOutput(entry["name"], None if as_binary is None else bool(as_binary)))
    key = parameters.get("key")
    request_id = data.get("id")
    return InferRequest(None if request_id is None else str(request_id), data["inputs"], binary, outputs,
                        bool(parameters.get("binary_data_output", False)),
                        None if key is None else str(key), may_spell_bools(head))


def _parameters(entry: dict, what: str) -> dict:
    parameters = entry.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest(f"'parameters' of {what} must be an object")
    return parameters


def read_inputs(request: InferRequest, signature: Signature) -> dict[str, np.ndarray]:
    """The request's tensors as arrays, each checked against its entry's datatype and shape and against the
    model's datatype (names, ranks and fixed dims are :func:`~modelyard.deploy.protocol.validate`'s)."""
    specs = {t.name: t for t in signature.inputs}
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for entry in request.inputs:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise BadRequest("each input needs a 'name', a 'datatype', a 'shape' and 'data'")
        name = entry["name"]
        if name in arrays:
            raise BadRequest(f"input {name!r} is given twice")
        if name not in specs:
            raise BadRequest(f"unexpected input {name!r}; the model takes {list(specs)}")
        kind = entry.get("datatype")
        if kind not in DATATYPES:
            raise BadRequest(f"input {name!r} has datatype {kind!r}; datatypes are {', '.join(DATATYPES)}")
        expected = _DATATYPE_OF.get(specs[name].dtype)
        if kind != expected:
            raise BadRequest(f"input {name!r} has datatype {kind}, the model expects {expected}")
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise BadRequest(f"input {name!r} needs a 'shape': a list of non-negative ints")
        count = math.prod(shape)
        size = _parameters(entry, f"input {name!r}").get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(
                    request.binary):
                raise BadRequest(f"input {name!r}: binary_data_size {size!r} runs past the "
                                 f"{len(request.binary)} bytes after the JSON header")
            array = _from_binary(name, kind, request.binary[offset:offset + size], count)
            offset += size
        elif "data" in entry:
            array = _from_json(name, kind, entry["data"], request.maybe_bools)
        else:
            raise BadRequest(f"input {name!r} has neither 'data' nor a binary_data_size parameter")
        if array.size != count:
            raise BadRequest(f"input {name!r} has {array.size} values, its shape {shape} holds {count}")
        arrays[name] = array.reshape(shape)
    if offset != len(request.binary):
        raise BadRequest(f"{len(request.binary) - offset} bytes after the JSON header belong to no input")
    return arrays


def _from_binary(name: str, kind: str, chunk: bytes, count: int) -> np.ndarray:
    if kind == "BYTES":
        return _bytes_elements(name, chunk)
    dtype = np.dtype(DATATYPES[kind]).newbyteorder("<")
    if len(chunk) != count * dtype.itemsize:
        raise BadRequest(f"input {name!r}: {len(chunk)} bytes of {kind} data, its shape holds {count} values "
                         f"({count * dtype.itemsize} bytes)")
    if kind == "BOOL":
        return np.frombuffer(chunk, np.uint8) != 0
    return np.frombuffer(chunk, dtype).astype(dtype.newbyteorder("="), copy=False)


def _bytes_elements(name: str, chunk: bytes) -> np.ndarray:
    """BYTES elements: a 4-byte little-endian length, then that many bytes of UTF-8 text, repeated."""
    items, position = [], 0
    while position < len(chunk):
        if position + 4 > len(chunk):
            raise BadRequest(f"input {name!r}: a BYTES element's length is cut off")
        (length,) = struct.unpack_from("<I", chunk, position)
        position += 4
        if position + length > len(chunk):
            raise BadRequest(f"input {name!r}: a BYTES element runs past its binary_data_size")
        try:
            items.append(chunk[position:position + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise BadRequest(f"input {name!r}: a BYTES element is not UTF-8 text") from None
        position += length
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _from_json(name: str, kind: str, data, maybe_bools: bool) -> np.ndarray:
    if not isinstance(data, list):
        data = [data]
    if kind == "BYTES":
        try:
            array = np.asarray(data, dtype=object).reshape(-1)
        except ValueError:
            raise BadRequest(f"input {name!r} is not a rectangular array") from None
        if not all(isinstance(v, str) for v in array):
            raise BadRequest(f"input {name!r} is BYTES: its data must be strings")
        return array
    try:
        array = np.asarray(data)
    except ValueError:
        raise BadRequest(f"input {name!r} is not a rectangular array (rows of different lengths)") from None
    want = np.dtype(DATATYPES[kind]).kind
    if array.dtype.kind not in _ACCEPTED_KINDS[want] or (want != "b" and maybe_bools and _holds_bool(data)):
        raise BadRequest(f"input {name!r} is {kind}: its data must be "
                         + ("true/false" if want == "b" else "integers" if want in "iu" else "numbers"))
    return array


def _holds_bool(value) -> bool:
    """True when a nested list holds a JSON true/false (numpy takes them for 1/0 among numbers)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool):
            return True
    return False


def encode_response(outputs: dict[str, np.ndarray], request: InferRequest, model_name: str,
                    model_version: str) -> tuple[bytes, int | None]:
    """The infer response body and, when any output travels as binary, the length of its JSON head."""
    import orjson

    wanted = request.outputs if request.outputs is not None else [RequestedOutput(n, None) for n in outputs]
    entries, chunks = [], []
    for requested in wanted:
        if requested.name not in outputs:
            raise BadRequest(f"unknown output {requested.name!r}; the model returns {list(outputs)}")
        array = np.asarray(outputs[requested.name])
        entry = {"name": requested.name, "datatype": array_datatype(array), "shape": list(array.shape)}
        binary = request.binary_output if requested.binary is None else requested.binary
        if binary:
            chunk = _binary_of(array)
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            entry["data"] = _json_data(array)
        entries.append(entry)
    answer = {"model_name": model_name, "model_version": model_version, "outputs": entries}
    if request.id is not None:
        answer["id"] = request.id
    # NaN and +-inf are written as null (orjson's rule for numpy arrays, and /v1/predict's)
    head = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return head, None
    return b"".join([head, *chunks]), len(head)


def _json_data(array: np.ndarray):
    flat = np.ascontiguousarray(array).reshape(-1)
    if flat.dtype.kind in "OUS":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    if flat.dtype.kind == "f" and flat.dtype.itemsize < 4:
        return flat.astype(np.float32)  # orjson writes float32 and float64 arrays, not float16
    return flat


def _binary_of(array: np.ndarray) -> bytes:
    if array.dtype.kind in "OUS":
        parts = []
        for value in array.reshape(-1):
            data = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(struct.pack("<I", len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def error_body(message: str) -> bytes:
    """The protocol's error shape: ``{"error": "message"}`` (a string, which Triton's and KServe's clients read)."""
    return json.dumps({"error": message}).encode()
