"""The Open Inference Protocol codec: request heads, tensors (JSON and binary), datatypes and shapes, answers."""

import json
import struct

import numpy as np
import pytest

from modelyard.deploy.errors import BadRequest
from modelyard.deploy.protocol_v2 import encode_response, parse_request, read_inputs, tensor_metadata
from modelyard.registry.signature import Signature, TensorSpec

LINEAR = Signature((TensorSpec("x", "float32", ("batch", 4)),), (TensorSpec("y", "float32", ("batch", 3)),))
TEXT = Signature((TensorSpec("words", "string", (None, 1)), TensorSpec("n", "int64", (None, 1))),
                 (TensorSpec("label", "int64", (None,)),))


def inputs(body: dict, signature=LINEAR, binary: bytes = b""):
    head = json.dumps(body).encode()
    return read_inputs(parse_request(head + binary, str(len(head)) if binary else None), signature)


def tensor(data, shape=(1, 4), datatype="FP32", name="x") -> dict:
    return {"inputs": [{"name": name, "datatype": datatype, "shape": list(shape), "data": data}]}


def test_flat_and_nested_json_data_are_read_in_row_major_order():
    flat = inputs(tensor([1, 2, 3, 4, 5, 6, 7, 8], shape=(2, 4)))["x"]
    nested = inputs(tensor([[1, 2, 3, 4], [5, 6, 7, 8]], shape=(2, 4)))["x"]
    np.testing.assert_array_equal(flat, np.arange(1, 9).reshape(2, 4))
    np.testing.assert_array_equal(nested, flat)


def test_requested_outputs_leave_the_binary_tensors_alone():
    """Reading a requested output's binary_data flag overwrote the binary section: every JSON request with
    ``outputs`` failed with a 500."""
    body = {**tensor([1, 2, 3, 4]), "outputs": [{"name": "y", "parameters": {"binary_data": False}}]}
    np.testing.assert_array_equal(inputs(body)["x"], [[1, 2, 3, 4]])


def test_binary_tensors_follow_the_json_head_in_input_order():
    words = b"".join(struct.pack("<I", len(w)) + w for w in (b"Dream", b"\xc3\xa9t\xc3\xa9"))
    counts = np.array([[3], [-1]], dtype=np.int64)
    body = {"inputs": [
        {"name": "words", "datatype": "BYTES", "shape": [2, 1], "parameters": {"binary_data_size": len(words)}},
        {"name": "n", "datatype": "INT64", "shape": [2, 1], "parameters": {"binary_data_size": counts.nbytes}}]}
    arrays = inputs(body, TEXT, words + counts.tobytes())
    assert arrays["words"].reshape(-1).tolist() == ["Dream", "été"]
    np.testing.assert_array_equal(arrays["n"], counts)


@pytest.mark.parametrize(("body", "binary", "message"), [
    (tensor([1.0, 2, 3, 4], datatype="FP64"), b"", "input 'x' has datatype FP64, the model expects FP32"),
    (tensor([1.0, 2, 3, 4], datatype="FLOAT"), b"", "input 'x' has datatype 'FLOAT'; datatypes are BOOL"),
    (tensor([1.0, 2, 3], shape=(1, 4)), b"", "input 'x' has 3 values, its shape [1, 4] holds 4"),
    (tensor([1.0, 2, 3, 4], name="z"), b"", "unexpected input 'z'; the model takes ['x']"),
    (tensor([1.0, True, 3, 4]), b"", "input 'x' is FP32: its data must be numbers"),
    (tensor(["a", "b", "c", "d"]), b"", "input 'x' is FP32: its data must be numbers"),
    (tensor([[1.0, 2], [3]], shape=(1, 4)), b"", "input 'x' is not a rectangular array"),
    (tensor([1, 2, 3, 4], shape=(1, -4)), b"", "input 'x' needs a 'shape': a list of non-negative ints"),
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 12}}]},
     b"\0" * 12, "input 'x': 12 bytes of FP32 data, its shape holds 4 values (16 bytes)"),
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 32}}]},
     b"\0" * 16, "binary_data_size 32 runs past the 16 bytes after the JSON header"),
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}]},
     b"\0" * 20, "4 bytes after the JSON header belong to no input"),
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4]}]}, b"",
     "input 'x' has neither 'data' nor a binary_data_size parameter"),
    ({"inputs": []}, b"", "an infer request is an object"),
    ({"inputs": "x"}, b"", "an infer request is an object"),
])
def test_a_tensor_that_does_not_fit_is_a_400_naming_it(body, binary, message):
    with pytest.raises(BadRequest, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        inputs(body, binary=binary)


@pytest.mark.parametrize(("body", "length", "message"), [
    (b'{"inputs": [}', None, "malformed JSON"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [NaN]}]}', None, "malformed JSON"),
    (b"{}", "99", "Inference-Header-Content-Length '99' is not a length within the 2-byte body"),
    (b"{}", "-1", "is not a length"),
    (b"{}", "\u00b2", "is not a length"),  # a Latin-1 header byte that str.isdigit() takes for a digit
    (b"", None, "empty infer request"),
    (b'{"inputs": ' + b"[" * 100 + b"]" * 100 + b"}", None, "JSON nested deeper than 64 levels"),
])
def test_a_request_head_that_is_not_the_protocol_is_a_400(body, length, message):
    with pytest.raises(BadRequest, match=message):
        parse_request(body, length)


def test_answers_in_json_and_binary_as_each_output_asks():
    outputs = {"y": np.array([[1.5, np.nan, 3.0]], np.float32), "label": np.array([2], np.int64)}
    request = parse_request(json.dumps({"id": "r1", "inputs": [{}], "outputs": [
        {"name": "label"}, {"name": "y", "parameters": {"binary_data": True}}]}).encode(), None)
    body, length = encode_response(outputs, request, "lin", "2")
    head = json.loads(body[:length])
    assert head == {"model_name": "lin", "model_version": "2", "id": "r1", "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [1], "data": [2]},
        {"name": "y", "datatype": "FP32", "shape": [1, 3], "parameters": {"binary_data_size": 12}}]}
    np.testing.assert_array_equal(np.frombuffer(body[length:], np.float32), outputs["y"].reshape(-1))
    everything, none = encode_response(outputs, parse_request(b'{"inputs": [{}]}', None), "lin", "2")
    assert none is None and json.loads(everything)["outputs"][0]["data"] == [1.5, None, 3.0]  # NaN is null
    with pytest.raises(BadRequest, match="unknown output 'z'; the model returns"):
        encode_response(outputs, parse_request(b'{"inputs": [{}], "outputs": [{"name": "z"}]}', None), "m", "1")


def test_metadata_shows_dynamic_dims_as_minus_one():
    assert tensor_metadata(LINEAR.inputs[0]) == {"name": "x", "datatype": "FP32", "shape": [-1, 4]}
    assert tensor_metadata(TEXT.inputs[0])["datatype"] == "BYTES"
