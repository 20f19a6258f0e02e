"""The ONNX-on-torch interpreter (``torch:<device>`` for ``.onnx``) against onnxruntime on the same graphs.

Per-operator graphs are built with ``onnx.helper`` from one table of cases (every op in ``supported_ops()``, both
the attribute and the input form where an opset moved one to the other); whole models are tiny ``transformers``
networks exported once per session with the TorchScript exporter.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest

from modelyard.core.errors import InvalidInput
from modelyard.runtime.registry import get_backend
from modelyard.runtime.spec import Artifact

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min
_RNG = np.random.default_rng(20240611)


@dataclass(frozen=True)
class Init:
    """An input given as an initializer (a graph constant) rather than a graph input."""

    value: np.ndarray


@dataclass(frozen=True)
class Case:
    id: str
    op: str
    inputs: list
    attrs: dict = field(default_factory=dict)
    opset: int = 13
    outputs: int = 1


def _f(*shape) -> np.ndarray:
    return _RNG.standard_normal(shape).astype(np.float32)


def _pos(*shape) -> np.ndarray:
    return (_RNG.random(shape) + 0.5).astype(np.float32)


def _int(*shape, low=-9, high=10, dtype=np.int64) -> np.ndarray:
    value = _RNG.integers(low, high, size=shape).astype(dtype)
    value.flat[0] = value.flat[0] or 3  # never all zeros
    return value


def _bool(*shape) -> np.ndarray:
    value = _RNG.random(shape) > 0.5
    value.flat[0], value.flat[-1] = True, False
    return value


def _i64(*values) -> Init:
    return Init(np.array(values, dtype=np.int64))


def _scalar(value, dtype=np.int64) -> np.ndarray:
    return np.array(value, dtype=dtype)


_UNARY = ["Relu", "Sigmoid", "Tanh", "Exp", "Neg", "Abs", "Floor", "Ceil", "Sin", "Cos", "Erf", "Sign", "Softplus",
          "Softsign", "Identity"]

CASES: list[Case] = [
    *[Case(op.lower(), op, [_f(2, 3, 4) * 3]) for op in _UNARY],
    Case("reciprocal", "Reciprocal", [_pos(3, 4)]),
    Case("log", "Log", [_pos(3, 4)]),
    Case("sqrt", "Sqrt", [_pos(3, 4)]),
    Case("round-half-even", "Round", [np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.3, -0.7], np.float32)]),
    Case("mish", "Mish", [_f(2, 5) * 3], opset=18),
    Case("hardswish", "HardSwish", [_f(2, 5) * 4], opset=14),
    Case("hardsigmoid", "HardSigmoid", [_f(2, 5) * 4], {"alpha": 0.3, "beta": 0.4}),
    Case("gelu", "Gelu", [_f(2, 5) * 3], opset=20),
    Case("gelu-tanh", "Gelu", [_f(2, 5) * 3], {"approximate": "tanh"}, opset=20),
    Case("leakyrelu", "LeakyRelu", [_f(2, 5)], {"alpha": 0.1}),
    Case("elu", "Elu", [_f(2, 5)], {"alpha": 0.5}),
    Case("selu", "Selu", [_f(2, 5)]),
    Case("selu-attrs", "Selu", [_f(2, 5)], {"alpha": 1.5, "gamma": 2.0}),
    Case("celu", "Celu", [_f(2, 5)], {"alpha": 2.0}, opset=12),
    Case("not", "Not", [_bool(3, 4)]),
    Case("isnan", "IsNaN", [np.array([1.0, np.nan, -np.inf, 0.5], np.float32)]),
    Case("isinf", "IsInf", [np.array([1.0, np.nan, -np.inf, np.inf], np.float32)], opset=10),
    Case("isinf-positive-only", "IsInf", [np.array([1.0, -np.inf, np.inf], np.float32)], {"detect_negative": 0},
         opset=10),
    Case("isinf-negative-only", "IsInf", [np.array([1.0, -np.inf, np.inf], np.float32)], {"detect_positive": 0},
         opset=10),
    Case("dropout", "Dropout", [_f(3, 4)]),
    Case("add-broadcast", "Add", [_f(2, 3, 4), _f(3, 1)]),
    Case("add-int", "Add", [_int(2, 3), _int(3)]),
    Case("sub", "Sub", [_f(2, 3, 4), Init(_f(4))]),
    Case("mul", "Mul", [_f(2, 3, 4), _f(1, 3, 1)]),
    Case("div", "Div", [_f(2, 3), _pos(2, 3)]),
    Case("div-int64-truncates", "Div", [np.array([7, -7, 7, -7, 9, -1], np.int64),
                                        np.array([2, 2, -2, -2, 4, 3], np.int64)]),
    Case("div-int32", "Div", [_int(3, 4, dtype=np.int32), _int(3, 4, low=1, high=5, dtype=np.int32)]),
    Case("pow", "Pow", [_pos(2, 3), _f(2, 3)]),
    Case("pow-int-exponent", "Pow", [_f(2, 3), np.array(3, np.int64)]),
    Case("equal", "Equal", [_int(3, 4, low=0, high=3), _int(3, 4, low=0, high=3)]),
    Case("less", "Less", [_f(3, 4), _f(3, 4)]),
    Case("greater", "Greater", [_f(3, 4), _f(1, 4)]),
    Case("less-or-equal", "LessOrEqual", [_int(3, 4, low=0, high=3), _int(3, 4, low=0, high=3)], opset=16),
    Case("greater-or-equal", "GreaterOrEqual", [_int(3, 4, low=0, high=3), _int(4, low=0, high=3)], opset=16),
    Case("and", "And", [_bool(3, 4), _bool(3, 4)]),
    Case("or", "Or", [_bool(3, 4), _bool(4)]),
    Case("xor", "Xor", [_bool(3, 4), _bool(3, 4)]),
    Case("mod-int", "Mod", [np.array([7, -7, 7, -7, 5], np.int64), np.array([3, 3, -3, -3, 5], np.int64)]),
    Case("mod-fmod-float", "Mod", [_f(3, 4) * 5, _pos(3, 4)], {"fmod": 1}),
    Case("max", "Max", [_f(2, 3), _f(3), _f(2, 1)]),
    Case("min", "Min", [_f(2, 3), _f(3), _f(2, 1)]),
    Case("sum", "Sum", [_f(2, 3), _f(3), _f(2, 1)]),
    Case("mean", "Mean", [_f(2, 3), _f(3), _f(2, 1)]),
    Case("prelu", "PRelu", [_f(2, 3, 4, 4), Init(_pos(3, 1, 1))], opset=16),
    Case("where", "Where", [_bool(3, 4), _f(3, 4), _f(4)], opset=16),
    Case("where-int", "Where", [_bool(3, 1), _int(3, 4), _int(1, 4)], opset=16),
    # -- convolution and pooling
    Case("conv-stride-pads-bias", "Conv", [_f(2, 3, 9, 9), Init(_f(4, 3, 3, 3)), Init(_f(4))],
         {"strides": [2, 2], "pads": [1, 1, 1, 1]}, opset=11),
    Case("conv-groups-dilation", "Conv", [_f(1, 4, 10, 10), Init(_f(6, 2, 3, 3))],
         {"group": 2, "dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    Case("conv-asymmetric-pads", "Conv", [_f(1, 3, 8, 7), Init(_f(2, 3, 3, 2))], {"pads": [0, 1, 2, 0]}),
    Case("conv-same-upper", "Conv", [_f(1, 2, 7, 8), Init(_f(3, 2, 4, 3))],
         {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    Case("conv-same-lower", "Conv", [_f(1, 2, 7, 8), Init(_f(3, 2, 4, 3))],
         {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    Case("conv-valid", "Conv", [_f(1, 2, 7, 8), Init(_f(3, 2, 3, 3))], {"auto_pad": "VALID", "strides": [2, 1]}),
    Case("conv-1d", "Conv", [_f(2, 3, 11), Init(_f(5, 3, 3)), Init(_f(5))], {"pads": [1, 2], "strides": [2]}),
    Case("conv-3d", "Conv", [_f(1, 2, 5, 6, 5), Init(_f(3, 2, 3, 3, 3))], {"pads": [1, 1, 1, 1, 1, 1]}),
    Case("conv-weight-as-input", "Conv", [_f(1, 2, 6, 6), _f(3, 2, 3, 3)]),
    Case("convtranspose-stride2-output-padding", "ConvTranspose", [_f(1, 4, 5, 5), Init(_f(4, 3, 3, 3)),
                                                                   Init(_f(3))],
         {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}),
    Case("convtranspose-groups-dilation", "ConvTranspose", [_f(1, 4, 4, 5), Init(_f(4, 2, 3, 2))],
         {"group": 2, "dilations": [2, 1], "strides": [1, 2]}),
    Case("convtranspose-1d", "ConvTranspose", [_f(2, 3, 6), Init(_f(3, 2, 4))], {"strides": [2], "pads": [1, 1]}),
    Case("batchnorm", "BatchNormalization", [_f(2, 3, 4, 4), Init(_f(3)), Init(_f(3)), Init(_f(3)), Init(_pos(3))],
         {"epsilon": 1e-3}, opset=15),
    Case("instancenorm", "InstanceNormalization", [_f(2, 3, 4, 5), Init(_f(3)), Init(_f(3))]),
    Case("layernorm-last", "LayerNormalization", [_f(2, 3, 8), Init(_f(8)), Init(_f(8))], opset=17),
    Case("layernorm-axis1-no-bias", "LayerNormalization", [_f(2, 3, 4), Init(_f(3, 4))],
         {"axis": 1, "epsilon": 1e-3}, opset=17),
    Case("maxpool-pads-stride", "MaxPool", [_f(1, 2, 9, 9)],
         {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, opset=12),
    Case("maxpool-ceil", "MaxPool", [_f(1, 2, 8, 8)], {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
         opset=12),
    Case("maxpool-asymmetric-pads", "MaxPool", [_f(1, 2, 7, 8)], {"kernel_shape": [3, 2], "pads": [0, 1, 2, 0]},
         opset=12),
    Case("maxpool-dilations", "MaxPool", [_f(1, 2, 9, 9)], {"kernel_shape": [2, 2], "dilations": [2, 2]}, opset=12),
    Case("maxpool-same-upper", "MaxPool", [_f(1, 2, 7, 7)],
         {"kernel_shape": [2, 2], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, opset=12),
    Case("maxpool-1d", "MaxPool", [_f(2, 3, 10)], {"kernel_shape": [3], "strides": [2]}, opset=12),
    Case("avgpool-exclude-pad", "AveragePool", [_f(1, 2, 7, 7)],
         {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, opset=11),
    Case("avgpool-include-pad", "AveragePool", [_f(1, 2, 7, 7)],
         {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1}, opset=11),
    Case("avgpool-ceil", "AveragePool", [_f(1, 2, 8, 8)], {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
         opset=11),
    Case("avgpool-asymmetric-include-pad", "AveragePool", [_f(1, 2, 7, 8)],
         {"kernel_shape": [3, 3], "pads": [0, 1, 2, 0], "count_include_pad": 1}, opset=11),
    Case("avgpool-asymmetric-exclude-pad", "AveragePool", [_f(1, 2, 7, 8)],
         {"kernel_shape": [3, 3], "pads": [0, 1, 2, 0]}, opset=11),
    Case("maxpool-ceil-pads", "MaxPool", [_f(1, 2, 8, 8)],
         {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}, opset=12),
    Case("avgpool-ceil-pads-include", "AveragePool", [_f(1, 2, 8, 8)],
         {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1, "count_include_pad": 1},
         opset=19),
    Case("avgpool-ceil-pads-exclude", "AveragePool", [_f(1, 2, 8, 8)],
         {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}, opset=19),
    Case("avgpool-1d", "AveragePool", [_f(2, 3, 10)], {"kernel_shape": [4], "strides": [3]}, opset=11),
    Case("global-avgpool", "GlobalAveragePool", [_f(2, 3, 4, 5)]),
    Case("global-maxpool", "GlobalMaxPool", [_f(2, 3, 4, 5)]),
    # -- matrix products
    Case("gemm-plain", "Gemm", [_f(3, 4), Init(_f(4, 5))]),
    Case("gemm-trans-alpha-beta-c", "Gemm", [_f(4, 3), Init(_f(5, 4)), Init(_f(5))],
         {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}, opset=11),
    Case("gemm-c-matrix", "Gemm", [_f(3, 4), _f(4, 5), _f(3, 5)], {"alpha": 1.5}),
    Case("gemm-empty-c", "Gemm", [_f(3, 4), _f(5, 4), None], {"transB": 1, "beta": 3.0}),
    Case("matmul-batched", "MatMul", [_f(2, 3, 4), _f(4, 5)]),
    Case("matmul-broadcast", "MatMul", [_f(2, 1, 3, 4), _f(3, 4, 2)]),
    Case("matmul-vector", "MatMul", [_f(4), _f(2, 4, 3)]),
    Case("einsum-bmm", "Einsum", [_f(2, 3, 4), _f(2, 4, 5)], {"equation": "bij,bjk->bik"}, opset=12),
    Case("einsum-transpose", "Einsum", [_f(3, 4)], {"equation": "ij->ji"}, opset=12),
    Case("einsum-attention", "Einsum", [_f(1, 2, 3, 4), _f(1, 2, 5, 4)], {"equation": "bhid,bhjd->bhij"}, opset=12),
    # -- softmax: opset 11 flattens to 2-D at axis, opset 13 is per axis
    Case("softmax-11-default", "Softmax", [_f(2, 3, 4)], opset=11),
    Case("softmax-11-axis1", "Softmax", [_f(2, 3, 4)], {"axis": 1}, opset=11),
    Case("softmax-11-axis-neg", "Softmax", [_f(2, 3, 4)], {"axis": -1}, opset=11),
    Case("softmax-13-default", "Softmax", [_f(2, 3, 4)]),
    Case("softmax-13-axis1", "Softmax", [_f(2, 3, 4)], {"axis": 1}),
    Case("logsoftmax-11-axis1", "LogSoftmax", [_f(2, 3, 4)], {"axis": 1}, opset=11),
    Case("logsoftmax-13-axis0", "LogSoftmax", [_f(2, 3, 4)], {"axis": 0}),
    # -- shapes and layout
    Case("reshape-zero-minus-one", "Reshape", [_f(2, 3, 4), _i64(0, -1)]),
    Case("reshape-minus-one-first", "Reshape", [_f(2, 3, 4), _i64(-1, 2, 0)]),
    Case("reshape-shape-as-input", "Reshape", [_f(2, 3, 4), np.array([4, 0, -1], np.int64)]),
    Case("flatten-default", "Flatten", [_f(2, 3, 4, 5)]),
    Case("flatten-axis0", "Flatten", [_f(2, 3, 4)], {"axis": 0}),
    Case("flatten-axis2", "Flatten", [_f(2, 3, 4, 5)], {"axis": 2}),
    Case("flatten-axis-neg", "Flatten", [_f(2, 3, 4, 5)], {"axis": -1}),
    Case("flatten-axis-rank", "Flatten", [_f(2, 3, 4)], {"axis": 3}),
    Case("unsqueeze-11-attr", "Unsqueeze", [_f(3, 4)], {"axes": [0, -1]}, opset=11),
    Case("unsqueeze-13-input", "Unsqueeze", [_f(3, 4), _i64(1, 3)]),
    Case("unsqueeze-13-negative", "Unsqueeze", [_f(3, 4), _i64(-1, 0)]),
    Case("squeeze-11-attr", "Squeeze", [_f(1, 3, 1, 4)], {"axes": [0, 2]}, opset=11),
    Case("squeeze-13-input", "Squeeze", [_f(3, 4, 1), _i64(-1)]),
    Case("squeeze-13-all", "Squeeze", [_f(1, 3, 1, 4)]),
    Case("transpose-perm", "Transpose", [_f(2, 3, 4)], {"perm": [2, 0, 1]}),
    Case("transpose-default", "Transpose", [_f(2, 3, 4)]),
    Case("concat-neg-axis", "Concat", [_f(2, 3), _f(2, 1), Init(_f(2, 2))], {"axis": -1}),
    Case("concat-int", "Concat", [_int(2, 3), _int(1, 3)], {"axis": 0}),
    Case("split-11-attr", "Split", [_f(2, 4, 3)], {"axis": 1, "split": [1, 3]}, opset=11, outputs=2),
    Case("split-11-equal", "Split", [_f(6, 2)], opset=11, outputs=3),
    Case("split-13-input", "Split", [_f(2, 5), _i64(2, 3)], {"axis": -1}, outputs=2),
    Case("split-13-equal", "Split", [_f(2, 6)], {"axis": 1}, outputs=2),
    Case("split-18-num-outputs", "Split", [_f(7, 2)], {"num_outputs": 3}, opset=18, outputs=3),
    Case("split-18-num-outputs-even", "Split", [_f(2, 6)], {"axis": 1, "num_outputs": 2}, opset=18, outputs=2),
    Case("slice-negative-start-int64-max", "Slice", [_f(3, 6), _i64(-4), _i64(INT64_MAX), _i64(1)]),
    Case("slice-negative-end", "Slice", [_f(3, 6), _i64(1, 0), _i64(-1, -2), _i64(0, -1)]),
    Case("slice-step2", "Slice", [_f(3, 9), _i64(1), _i64(INT64_MAX), _i64(1), _i64(2)]),
    Case("slice-step-neg1-reverse", "Slice", [_f(3, 6), _i64(-1), _i64(INT64_MIN), _i64(1), _i64(-1)]),
    Case("slice-step-neg2", "Slice", [_f(3, 9), _i64(7, 2), _i64(1, 0), _i64(1, 0), _i64(-2, -1)]),
    Case("slice-step-neg-start-below", "Slice", [_f(3, 4), _i64(-10), _i64(INT64_MIN), _i64(1), _i64(-1)]),
    Case("slice-default-axes", "Slice", [_f(4, 5), _i64(1, 2), _i64(3, 100)]),
    Case("slice-out-of-range", "Slice", [_f(4, 5), _i64(10), _i64(20), _i64(0)]),
    Case("slice-inputs-at-runtime", "Slice", [_f(4, 5), np.array([-3], np.int64), np.array([5], np.int64),
                                              np.array([1], np.int64)]),
    Case("slice-9-attrs", "Slice", [_f(4, 5)], {"starts": [1, -3], "ends": [3, 1000], "axes": [0, 1]}, opset=9),
    Case("gather-negative-2d-indices", "Gather", [_f(5, 3), np.array([[0, -1], [2, -5]], np.int64)]),
    Case("gather-scalar-index", "Gather", [_f(5, 3), np.array(-2, np.int64)]),
    Case("gather-axis1", "Gather", [_f(2, 5, 3), Init(np.array([4, 0, -3], np.int32))], {"axis": 1}),
    Case("gather-axis-neg", "Gather", [_f(2, 5, 3), np.array([[1, 2]], np.int64)], {"axis": -1}),
    Case("gather-elements", "GatherElements", [_f(3, 4), np.array([[0, -1, 2, 1]] * 3, np.int64)], {"axis": 1}),
    Case("gather-elements-axis0", "GatherElements", [_f(3, 4), np.array([[2, 0, -1, 1]], np.int64)]),
    Case("gather-nd", "GatherND", [_f(3, 4, 5), np.array([[0, 1], [2, -1], [1, 3]], np.int64)]),
    Case("gather-nd-full", "GatherND", [_f(3, 4), np.array([[[0, 1]], [[2, 3]]], np.int64)]),
    Case("gather-nd-batch-dims", "GatherND", [_f(2, 4, 5), np.array([[[1], [3]], [[0], [-2]]], np.int64)],
         {"batch_dims": 1}),
    Case("scatter-nd", "ScatterND", [_f(4, 5), np.array([[1], [3]], np.int64), _f(2, 5)]),
    Case("scatter-nd-elements", "ScatterND", [_f(3, 4), np.array([[0, 1], [2, -1]], np.int64), _f(2)]),
    Case("scatter-nd-add", "ScatterND", [_f(4, 5), np.array([[1], [1]], np.int64), _f(2, 5)],
         {"reduction": "add"}, opset=16),
    Case("shape", "Shape", [_f(2, 3, 4)]),
    Case("shape-start", "Shape", [_f(2, 3, 4)], {"start": 1}, opset=15),
    Case("shape-start-end-negative", "Shape", [_f(2, 3, 4, 5)], {"start": -3, "end": -1}, opset=15),
    Case("size", "Size", [_f(2, 3, 4)]),
    Case("constant-tensor", "Constant", [], {"value": _f(2, 3)}),
    Case("constant-float", "Constant", [], {"value_float": 2.5}),
    Case("constant-ints", "Constant", [], {"value_ints": [3, -1, 4]}),
    Case("constant-of-shape-default", "ConstantOfShape", [np.array([2, 3], np.int64)], opset=9),
    Case("constant-of-shape-int", "ConstantOfShape", [np.array([3, 1, 2], np.int64)],
         {"value": np.array([7], np.int64)}, opset=9),
    Case("constant-of-shape-float", "ConstantOfShape", [np.array([4], np.int64)],
         {"value": np.array([1.5], np.float32)}, opset=9),
    Case("cast-float-int32", "Cast", [_f(3, 4) * 5], {"to": 6}),
    Case("cast-float-bool", "Cast", [np.array([0.0, -0.5, 2.0, 0.0], np.float32)], {"to": 9}),
    Case("cast-int-float", "Cast", [_int(3, 4)], {"to": 1}),
    Case("cast-bool-float", "Cast", [_bool(3, 4)], {"to": 1}),
    Case("cast-float-half", "Cast", [_f(3, 4)], {"to": 10}),
    Case("cast-int64-int32", "Cast", [_int(3, 4)], {"to": 6}),
    Case("castlike", "CastLike", [_f(3, 4) * 5, Init(np.array([1], np.int32))], opset=15),
    Case("expand", "Expand", [_f(3, 1), _i64(2, 3, 4)]),
    Case("expand-lower-rank-shape", "Expand", [_f(2, 1, 4), _i64(3, 1)]),
    Case("expand-int", "Expand", [_int(1, 3), np.array([2, 1], np.int64)]),
    Case("tile", "Tile", [_f(2, 3), _i64(2, 3)]),
    Case("tile-3d", "Tile", [_int(2, 1, 3), _i64(1, 4, 2)]),
    # -- reductions: ReduceSum moved axes to an input at 13, the others at 18
    Case("reducesum-11-attr", "ReduceSum", [_f(2, 3, 4)], {"axes": [1], "keepdims": 0}, opset=11),
    Case("reducesum-11-all", "ReduceSum", [_f(2, 3, 4)], opset=11),
    Case("reducesum-13-input", "ReduceSum", [_f(2, 3, 4), _i64(-1, 0)]),
    Case("reducesum-13-no-axes", "ReduceSum", [_f(2, 3, 4)], {"keepdims": 0}),
    Case("reducesum-13-noop-empty", "ReduceSum", [_f(2, 3, 4), Init(np.zeros(0, np.int64))],
         {"noop_with_empty_axes": 1}),
    Case("reducesum-int32", "ReduceSum", [_int(3, 4, dtype=np.int32), _i64(1)]),
    Case("reducemean-13-attr-keep", "ReduceMean", [_f(2, 3, 4)], {"axes": [0, 2], "keepdims": 1}),
    Case("reducemean-13-attr-drop", "ReduceMean", [_f(2, 3, 4)], {"axes": [-1], "keepdims": 0}),
    Case("reducemean-18-input-keep", "ReduceMean", [_f(2, 3, 4), _i64(1)], opset=18),
    Case("reducemean-18-input-drop", "ReduceMean", [_f(2, 3, 4), _i64(0, 2)], {"keepdims": 0}, opset=18),
    Case("reducemean-18-all", "ReduceMean", [_f(2, 3, 4)], {"keepdims": 0}, opset=18),
    Case("reducemean-18-noop", "ReduceMean", [_f(2, 3, 4)], {"noop_with_empty_axes": 1}, opset=18),
    Case("reducemax-13", "ReduceMax", [_f(2, 3, 4)], {"axes": [1]}),
    Case("reducemax-18", "ReduceMax", [_f(2, 3, 4), _i64(-1)], {"keepdims": 0}, opset=18),
    Case("reducemin-13", "ReduceMin", [_f(2, 3, 4)], {"axes": [0, 1], "keepdims": 0}),
    Case("reducemin-18-int", "ReduceMin", [_int(2, 3, 4), _i64(2)], opset=18),
    Case("reduceprod-13", "ReduceProd", [_pos(2, 3, 4)], {"axes": [1, 2], "keepdims": 0}),
    Case("reduceprod-18", "ReduceProd", [_pos(2, 3, 4), _i64(0)], opset=18),
    Case("reducel2-13", "ReduceL2", [_f(2, 3, 4)], {"axes": [2]}),
    Case("reducel2-18", "ReduceL2", [_f(2, 3, 4), _i64(0, 1)], {"keepdims": 0}, opset=18),
    Case("reducesumsquare-13", "ReduceSumSquare", [_f(2, 3, 4)], {"axes": [1], "keepdims": 0}),
    Case("reducesumsquare-18", "ReduceSumSquare", [_f(2, 3, 4)], opset=18),
    Case("reducelogsumexp-13", "ReduceLogSumExp", [_f(2, 3, 4)], {"axes": [-1]}),
    Case("reducelogsumexp-18", "ReduceLogSumExp", [_f(2, 3, 4), _i64(1)], {"keepdims": 0}, opset=18),
    Case("argmax", "ArgMax", [_f(3, 4, 5)], {"axis": 1, "keepdims": 0}),
    Case("argmax-default", "ArgMax", [_f(3, 4)]),
    Case("argmin-last-index", "ArgMin", [np.array([[1, 0, 3, 0], [2, 2, 5, 7]], np.int64)],
         {"axis": 1, "select_last_index": 1}),
    Case("argmin-first-index", "ArgMin", [np.array([[1, 0, 3, 0], [2, 2, 5, 7]], np.int64)], {"axis": -1}),
    # -- padding
    Case("pad-constant-value", "Pad", [_f(1, 2, 3, 4), _i64(0, 0, 1, 2, 0, 0, 2, 1), Init(np.array(1.5, np.float32))],
         opset=11),
    Case("pad-constant-default", "Pad", [_f(2, 3), _i64(1, 0, 0, 2)], opset=13),
    Case("pad-reflect", "Pad", [_f(1, 2, 4, 5), _i64(0, 0, 2, 1, 0, 0, 1, 3)], {"mode": "reflect"}, opset=13),
    Case("pad-edge", "Pad", [_f(1, 2, 4, 5), _i64(0, 0, 2, 0, 0, 0, 1, 3)], {"mode": "edge"}, opset=13),
    Case("pad-reflect-2d-all-dims", "Pad", [_f(4, 5), _i64(1, 2, 2, 1)], {"mode": "reflect"}, opset=13),
    Case("pad-edge-3d-all-dims", "Pad", [_f(2, 3, 4), _i64(1, 0, 2, 0, 1, 1)], {"mode": "edge"}, opset=13),
    Case("pad-negative-crops", "Pad", [_f(3, 5), _i64(-1, 1, 0, -2)], opset=13),
    Case("pad-int", "Pad", [_int(2, 3), _i64(1, 1, 1, 1), Init(np.array(-4, np.int64))], opset=13),
    Case("pad-18-axes", "Pad", [_f(2, 3, 4), _i64(1, 2), None, _i64(-1)], opset=18),
    Case("pad-19-wrap", "Pad", [_f(1, 2, 4, 5), _i64(0, 0, 1, 2, 0, 0, 2, 1)], {"mode": "wrap"}, opset=19),
    Case("pad-2-attrs", "Pad", [_f(2, 3)], {"pads": [0, 1, 1, 2], "value": 2.0}, opset=2),
    # -- generators
    Case("range-int", "Range", [_scalar(2), _scalar(20), _scalar(3)], opset=11),
    Case("range-int-negative-delta", "Range", [_scalar(10), _scalar(-3), _scalar(-4)], opset=11),
    Case("range-float", "Range", [_scalar(0.5, np.float32), _scalar(3.0, np.float32), _scalar(0.25, np.float32)],
         opset=11),
    Case("range-int32", "Range", [_scalar(-1, np.int32), _scalar(5, np.int32), _scalar(2, np.int32)], opset=11),
    # -- resize: nearest modes, linear transforms, scales or sizes
    Case("resize-nearest-asymmetric-floor-x2", "Resize", [_f(1, 2, 3, 4), None,
                                                         Init(np.array([1, 1, 2, 2], np.float32))],
         {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}),
    Case("resize-nearest-asymmetric-floor-x1.5", "Resize", [_f(1, 2, 4, 4), None,
                                                           Init(np.array([1, 1, 1.5, 1.5], np.float32))],
         {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}),
    Case("resize-nearest-asymmetric-round-x3", "Resize", [_f(1, 2, 3, 4), None,
                                                         Init(np.array([1, 1, 3, 3], np.float32))],
         {"mode": "nearest", "coordinate_transformation_mode": "asymmetric"}),
    Case("resize-nearest-half-pixel-down", "Resize", [_f(1, 2, 8, 6), None, Init(np.array([1, 1, 0.5, 0.5],
                                                                                           np.float32))],
         {"mode": "nearest"}),
    Case("resize-nearest-half-pixel-x2", "Resize", [_f(1, 2, 3, 4), None, Init(np.array([1, 1, 2, 2], np.float32))],
         {"mode": "nearest"}),
    Case("resize-nearest-ceil-sizes", "Resize", [_f(1, 2, 4, 5), None, None, _i64(1, 2, 7, 3)],
         {"mode": "nearest", "nearest_mode": "ceil"}),
    Case("resize-nearest-sizes-11", "Resize", [_f(1, 2, 3, 4), Init(np.zeros(0, np.float32)),
                                              Init(np.zeros(0, np.float32)), _i64(1, 2, 6, 8)],
         {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, opset=11),
    Case("resize-linear-half-pixel-x2", "Resize", [_f(1, 2, 3, 4), None, Init(np.array([1, 1, 2, 2], np.float32))],
         {"mode": "linear"}),
    Case("resize-linear-half-pixel-down", "Resize", [_f(1, 2, 8, 6), None, Init(np.array([1, 1, 0.5, 0.5],
                                                                                          np.float32))],
         {"mode": "linear"}),
    Case("resize-linear-align-corners-sizes", "Resize", [_f(1, 2, 3, 4), None, None, _i64(1, 2, 7, 5)],
         {"mode": "linear", "coordinate_transformation_mode": "align_corners"}),
    Case("resize-linear-pytorch-half-pixel", "Resize", [_f(1, 2, 3, 4), None, None, _i64(1, 2, 5, 7)],
         {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}),
    Case("resize-linear-asymmetric", "Resize", [_f(1, 2, 3, 4), None, Init(np.array([1, 1, 2, 1.5], np.float32))],
         {"mode": "linear", "coordinate_transformation_mode": "asymmetric"}),
    Case("resize-linear-1d", "Resize", [_f(2, 3, 5), None, Init(np.array([1, 1, 2], np.float32))],
         {"mode": "linear"}),
    Case("resize-cubic-half-pixel", "Resize", [_f(1, 2, 4, 5), None, Init(np.array([1, 1, 2, 2], np.float32))],
         {"mode": "cubic"}),
    Case("resize-cubic-align-corners", "Resize", [_f(1, 2, 4, 5), None, None, _i64(1, 2, 6, 7)],
         {"mode": "cubic", "coordinate_transformation_mode": "align_corners"}),
    Case("resize-nearest-round-prefer-ceil-down", "Resize", [_f(1, 2, 8, 6), None,
                                                            Init(np.array([1, 1, 0.5, 0.5], np.float32))],
         {"mode": "nearest", "nearest_mode": "round_prefer_ceil"}),
    Case("resize-nearest-uint8", "Resize", [_int(1, 1, 3, 4, low=0, high=255, dtype=np.uint8), None, None,
                                            _i64(1, 1, 5, 9)], {"mode": "nearest"}),
    Case("resize-linear-odd-down", "Resize", [_f(1, 2, 9, 7), None, Init(np.array([1, 1, 0.6, 0.7], np.float32))],
         {"mode": "linear"}),
    Case("resize-linear-half-pixel-symmetric", "Resize", [_f(1, 2, 3, 4), None,
                                                         Init(np.array([1, 1, 2.5, 1.7], np.float32))],
         {"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric"}, opset=19),
    Case("resize-cubic-exclude-outside", "Resize", [_f(1, 2, 4, 5), None, Init(np.array([1, 1, 1.5, 2], np.float32))],
         {"mode": "cubic", "exclude_outside": 1, "cubic_coeff_a": -0.5}),
    Case("resize-18-axes", "Resize", [_f(1, 2, 3, 4), None, Init(np.array([2, 1.5], np.float32))],
         {"mode": "linear", "axes": [2, 3]}, opset=18),
    Case("resize-10-nearest-down", "Resize", [_f(1, 2, 6, 8), Init(np.array([1, 1, 0.5, 0.75], np.float32))],
         opset=10),
    Case("resize-10-linear", "Resize", [_f(1, 2, 3, 4), Init(np.array([1, 1, 2, 1.5], np.float32))],
         {"mode": "linear"}, opset=10),
    Case("upsample-7-attr-scales", "Upsample", [_f(1, 2, 3, 4)], {"scales": [1.0, 1.0, 2.0, 3.0]}, opset=7),
    Case("upsample-9-nearest", "Upsample", [_f(1, 2, 3, 4), Init(np.array([1, 1, 2, 3], np.float32))], opset=9),
    Case("upsample-9-linear", "Upsample", [_f(1, 2, 3, 4), Init(np.array([1, 1, 2, 2], np.float32))],
         {"mode": "linear"}, opset=9),
    # -- selection and scans
    Case("topk-largest", "TopK", [_f(3, 6), _i64(3)], outputs=2),
    Case("topk-smallest-axis0", "TopK", [_f(5, 4), _i64(2)], {"axis": 0, "largest": 0}, outputs=2, opset=11),
    Case("clip-6-attrs", "Clip", [_f(3, 4)], {"min": -0.5, "max": 0.7}, opset=6),
    Case("clip-6-max-only", "Clip", [_f(3, 4)], {"max": 0.2}, opset=6),
    Case("clip-13-inputs", "Clip", [_f(3, 4), Init(np.array(-0.5, np.float32)), Init(np.array(0.7, np.float32))]),
    Case("clip-13-min-only", "Clip", [_f(3, 4), Init(np.array(-0.1, np.float32))]),
    Case("clip-13-max-only", "Clip", [_f(3, 4), None, np.array(0.3, np.float32)]),
    Case("clip-13-none", "Clip", [_f(3, 4)]),
    Case("clip-13-int", "Clip", [_int(3, 4), Init(np.array(-2, np.int64)), Init(np.array(4, np.int64))]),
    Case("trilu-upper-k", "Trilu", [_f(4, 5), _i64(1)], opset=14),
    Case("trilu-lower", "Trilu", [_f(2, 4, 5)], {"upper": 0}, opset=14),
    Case("trilu-lower-negative-k", "Trilu", [_f(4, 5), np.array(-1, np.int64)], {"upper": 0}, opset=14),
    Case("cumsum", "CumSum", [_f(3, 4), Init(np.array(1, np.int64))], opset=14),
    Case("cumsum-int32-negative-axis", "CumSum", [_int(3, 4, dtype=np.int32), np.array(-2, np.int32)], opset=14),
    Case("cumsum-exclusive", "CumSum", [_f(3, 4), Init(np.array(1, np.int64))], {"exclusive": 1}, opset=14),
    Case("cumsum-reverse", "CumSum", [_f(3, 4), Init(np.array(0, np.int64))], {"reverse": 1}, opset=14),
    Case("cumsum-exclusive-reverse", "CumSum", [_int(3, 4), Init(np.array(1, np.int64))],
         {"exclusive": 1, "reverse": 1}, opset=14),
]


def _build(case: Case):
    """The case as a checked single-node model (output types come from strict shape inference) and its feeds."""
    import onnx
    from onnx import helper, numpy_helper

    names, graph_inputs, initializers, feeds = [], [], [], {}
    for index, value in enumerate(case.inputs):
        if value is None:
            names.append("")
        elif isinstance(value, Init):
            names.append(f"c{index}")
            initializers.append(numpy_helper.from_array(value.value, f"c{index}"))
        else:
            names.append(f"in{index}")
            graph_inputs.append(helper.make_tensor_value_info(
                f"in{index}", helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape)))
            feeds[f"in{index}"] = value
    while names and not names[-1]:
        names.pop()
    attrs = {k: numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v for k, v in case.attrs.items()}
    outputs = [f"out{i}" for i in range(case.outputs)]
    node = helper.make_node(case.op, names, outputs, name=f"{case.op}_0", **attrs)
    graph = helper.make_graph([node], case.id, graph_inputs, [helper.make_empty_tensor_value_info(o) for o in outputs],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)])
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    unknown = [o for o in model.graph.output if not o.type.tensor_type.HasField("shape")]
    if unknown:  # a shape computed from a runtime input: declare the rank onnxruntime finds, dims symbolic
        import onnxruntime as ort

        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        ranks = dict(zip(outputs, (v.ndim for v in session.run(None, feeds)), strict=True))
        for output in unknown:
            output.type.tensor_type.shape.dim.extend(
                onnx.TensorShapeProto.Dimension(dim_param=f"{output.name}_{i}") for i in range(ranks[output.name]))
    onnx.checker.check_model(model, full_check=True)
    return model, feeds


def _save(model, directory, name: str):
    import onnx

    path = directory / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _load(backend: str, path, **options):
    return get_backend(backend).load(Artifact("onnx", path, None), **options)


def _assert_same(actual: dict, expected: dict, rtol=1e-5, atol=1e-5) -> None:
    assert list(actual) == list(expected)
    for name, want in expected.items():
        got = actual[name]
        assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
        assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
        if np.issubdtype(want.dtype, np.floating):
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=name)
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_the_case_table_covers_every_supported_op():
    from modelyard.runtime.onnx_torch import supported_ops

    assert set(supported_ops()) - {c.op for c in CASES} == set()
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_operator_matches_onnxruntime(case, tmp_path):
    model, feeds = _build(case)
    path = _save(model, tmp_path, case.id)
    expected = _load("onnxruntime:cpu", path).infer(feeds)
    actual = _load("torch:cpu", path).infer(feeds)
    _assert_same(actual, expected)


def _chain_model():
    """Host-side shape math feeding a dynamic Reshape, (n, l, 6) -> (n, 2l, 3): Shape -> Gather (0-D index) ->
    Div (int64) -> Unsqueeze -> Concat -> Reshape; then a MatMul with a transposed initializer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        helper.make_node("Gather", ["shape", "two"], ["features"], axis=0),
        helper.make_node("Div", ["features", "two"], ["half"]),
        helper.make_node("Unsqueeze", ["batch", "axis0"], ["batch_1d"]),
        helper.make_node("Unsqueeze", ["half", "axis0"], ["half_1d"]),
        helper.make_node("Concat", ["batch_1d", "minus_one", "half_1d"], ["new_shape"], axis=0),
        helper.make_node("Reshape", ["x", "new_shape"], ["y"]),
        helper.make_node("Transpose", ["w"], ["w_t"], perm=[1, 0]),  # folded: its input is an initializer
        helper.make_node("MatMul", ["y", "w_t"], ["z"]),
        helper.make_node("Relu", ["z"], ["out"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array(2, np.int64), "two"),
        numpy_helper.from_array(np.array([0], np.int64), "axis0"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
        numpy_helper.from_array(_f(5, 3), "w"),
    ]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "l", 6])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", "h", 5])],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model, full_check=True)
    return model


def test_dynamic_shape_math_folds_constants_and_releases_intermediates(tmp_path):
    from modelyard.runtime.onnx_torch import OnnxTorchProgram

    model = _chain_model()
    path = _save(model, tmp_path, "chain")
    reference, runner = _load("onnxruntime:cpu", path), _load("torch:cpu", path)
    for shape in [(2, 4, 6), (3, 8, 6)]:
        feeds = {"x": _f(*shape)}
        _assert_same(runner.infer(feeds), reference.infer(feeds))
    program = OnnxTorchProgram(model, "cpu")
    assert len(program.steps) < len(model.graph.node)
    assert "Transpose" not in [s.op_type for s in program.steps] and "w_t" in program.constants
    assert any(step.release for step in program.steps)
    released = {name for step in program.steps for name in step.release}
    assert "x" not in released and "out" not in released


# -- errors -----------------------------------------------------------------------------------------------------------

def test_a_graph_with_an_ml_domain_op_is_refused_at_load_naming_it(tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("LinearClassifier", ["x"], ["label", "scores"], domain="ai.onnx.ml",
                            coefficients=[0.5, -0.5, 1.0, 2.0], intercepts=[0.1, -0.1], classlabels_ints=[0, 1])
    relu = helper.make_node("Relu", ["scores"], ["relu"])
    graph = helper.make_graph([node, relu], "ml", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("label", TensorProto.INT64, [1]),
                               helper.make_tensor_value_info("relu", TensorProto.FLOAT, [1, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)])
    path = _save(model, tmp_path, "ml")
    assert _load("onnxruntime:cpu", path).infer({"x": np.ones((1, 2), np.float32)})  # the graph itself is valid
    with pytest.raises(InvalidInput, match="ai.onnx.ml::LinearClassifier") as caught:
        _load("torch:cpu", path)
    assert "Relu" not in str(caught.value)

    from modelyard.runtime.onnx_torch import unsupported_ops

    assert unsupported_ops(model) == ["ai.onnx.ml::LinearClassifier"]


def test_a_node_failing_at_run_time_names_the_op_and_the_node(tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("Reshape", ["x", "shape"], ["y"], name="to_rows")
    graph = helper.make_graph([node], "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4]),
                                              helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", "cols"])])
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path, "bad")
    runner = _load("torch:cpu", path)
    good = runner.infer({"x": _f(3, 4), "shape": np.array([2, 6], np.int64)})
    assert good["y"].shape == (2, 6)
    with pytest.raises(InvalidInput, match="Reshape node 'to_rows' failed"):
        runner.infer({"x": _f(3, 4), "shape": np.array([5, 5], np.int64)})


REFUSED = [
    Case("convtranspose-asymmetric-pads", "ConvTranspose", [_f(1, 2, 4, 4), Init(_f(2, 3, 3, 3))],
         {"pads": [0, 1, 1, 0], "strides": [2, 2]}),
    Case("avgpool-dilations", "AveragePool", [_f(1, 2, 7, 7)], {"kernel_shape": [2, 2], "dilations": [2, 2]},
         opset=19),
    Case("resize-tf-crop-and-resize", "Resize", [_f(1, 1, 4, 4), Init(np.array([0, 0, 0.1, 0.2, 1, 1, 0.9, 0.8],
                                                                                np.float32)), None, _i64(1, 1, 3, 3)],
         {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}),
    Case("layernorm-mean-output-read", "LayerNormalization", [_f(2, 3, 8), Init(_f(8))], opset=17, outputs=2),
]


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.id)
def test_what_the_interpreter_does_not_cover_is_refused_not_guessed(case, tmp_path):
    model, feeds = _build(case)
    path = _save(model, tmp_path, case.id)
    assert _load("onnxruntime:cpu", path).infer(feeds)  # a valid graph that onnxruntime runs
    with pytest.raises(InvalidInput, match=f"^{case.op} node '{case.op}_0' failed|^{case.op} with"):
        _load("torch:cpu", path).infer(feeds)


def test_the_runner_checks_feed_names_and_ranks(tmp_path):
    model, feeds = _build(CASES[0])
    runner = _load("torch:cpu", _save(model, tmp_path, "relu"))
    assert runner.backend_name == "torch:cpu" and runner.info["onnx_on_torch"] is True
    with pytest.raises(InvalidInput, match="missing \\['in0'\\]"):
        runner.infer({"x": feeds["in0"]})
    with pytest.raises(InvalidInput, match="rank"):
        runner.infer({"in0": feeds["in0"][0]})
    with pytest.raises(InvalidInput, match="dim 2 must be 4"):
        runner.infer({"in0": np.ones((2, 3, 5), np.float32)})


# -- whole models ------------------------------------------------------------------------------------------------------

def _export(model, args, path, input_names, output_names, dynamic_axes):
    import torch

    class ByName(torch.nn.Module):
        """Inputs by keyword, outputs as a tuple: transformers' forward takes more positional parameters."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            result = self.model(**dict(zip(input_names, tensors, strict=True)), return_dict=True)
            return tuple(result[name] for name in output_names)

    with warnings.catch_warnings():
        # the TorchScript exporter traces python control flow on shapes and says so; the graphs are checked below
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export",
                                DeprecationWarning)
        warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)  # its own logging setup
        # BERT's mask indexing uses non-negative indices only, which is what this warning is about
        warnings.filterwarnings("ignore", "Exporting aten::index operator of advanced indexing", UserWarning)
        torch.onnx.export(ByName(), args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)
    return path


@pytest.fixture(scope="session")
def onnx_torch_models(tmp_path_factory):
    """name -> (path, feeds factory by batch size) for a tiny BERT, ResNet and ViT exported once."""
    import torch
    from transformers import BertConfig, BertModel, ResNetConfig, ResNetModel, ViTConfig, ViTModel

    directory = tmp_path_factory.mktemp("onnx_torch_models")
    torch.manual_seed(0)
    models = {}
    with torch.no_grad():
        bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                    vocab_size=100, max_position_embeddings=64)).eval()
        ids = torch.randint(0, 100, (2, 7))
        mask = torch.ones(2, 7, dtype=torch.int64)
        mask[1, 5:] = 0
        dims = {0: "batch", 1: "sequence"}
        path = _export(bert, (ids, mask), directory / "bert.onnx", ["input_ids", "attention_mask"],
                       ["last_hidden_state", "pooler_output"],
                       {"input_ids": dims, "attention_mask": dims, "last_hidden_state": dims,
                        "pooler_output": {0: "batch"}})

        def bert_feeds(batch, length=9):
            rng = np.random.default_rng(batch)
            mask = np.ones((batch, length), np.int64)
            mask[-1, length - 3:] = 0
            return {"input_ids": rng.integers(1, 100, (batch, length)).astype(np.int64), "attention_mask": mask}

        models["bert"] = (path, bert_feeds)

        resnet = ResNetModel(ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1])).eval()
        path = _export(resnet, (torch.randn(1, 3, 32, 32),), directory / "resnet.onnx", ["pixel_values"],
                       ["last_hidden_state", "pooler_output"],
                       {"pixel_values": {0: "batch"}, "last_hidden_state": {0: "batch"}, "pooler_output": {0: "batch"}})
        models["resnet"] = (path, lambda batch: {"pixel_values": np.random.default_rng(batch).standard_normal(
            (batch, 3, 32, 32)).astype(np.float32)})

        vit = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                 image_size=32, patch_size=8)).eval()
        path = _export(vit, (torch.randn(1, 3, 32, 32),), directory / "vit.onnx", ["pixel_values"],
                       ["last_hidden_state", "pooler_output"],
                       {"pixel_values": {0: "batch"}, "last_hidden_state": {0: "batch"}, "pooler_output": {0: "batch"}})
        models["vit"] = (path, lambda batch: {"pixel_values": np.random.default_rng(batch + 10).standard_normal(
            (batch, 3, 32, 32)).astype(np.float32)})
    return models


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bert", "resnet", "vit"])
def test_exported_model_matches_onnxruntime_at_two_batch_sizes(name, onnx_torch_models):
    path, make_feeds = onnx_torch_models[name]
    reference, runner = _load("onnxruntime:cpu", path), _load("torch:cpu", path)
    assert [t.shape[0] for t in runner.inputs] == ["batch"] * len(runner.inputs)
    for batch in (1, 3):
        feeds = make_feeds(batch)
        _assert_same(runner.infer(feeds), reference.infer(feeds), rtol=1e-4, atol=1e-4)
    if name == "bert":  # a different sequence length goes through the same compiled program
        feeds = make_feeds(2, length=5)
        _assert_same(runner.infer(feeds), reference.infer(feeds), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_a_dynamo_exported_bert_matches_onnxruntime(tmp_path_factory):
    """The registry and ``migrate convert`` export with the dynamo exporter, whose graphs differ (GatherND, folded
    shapes, ONNX functions inlined)."""
    from modelyard.migrate.model.passes import convert
    from modelyard.runtime.feeds import random_feeds
    from modelyard.runtime.spec import parse_spec

    folder = tmp_path_factory.mktemp("dynamo-bert")
    spec = parse_spec({"entrypoint": "modelyard.runtime.zoo:hf_bert", "outputs": ["logits"],
                       "inputs": [{"name": "input_ids", "shape": ["batch", "seq"], "dtype": "int64", "range": [0, 99]},
                                  {"name": "attention_mask", "shape": ["batch", "seq"], "dtype": "int64",
                                   "range": [0, 2]}],
                       "dims": {"batch": 2, "seq": 8}})
    artifact = convert(spec, "onnx", out_dir=folder / "out", cache_dir=folder / "cache").artifact
    reference, runner = _load("onnxruntime:cpu", artifact.path), _load("torch:cpu", artifact.path)
    for feeds in random_feeds(spec, 2, seed=5):
        _assert_same(runner.infer(feeds), reference.infer(feeds), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_layers_intermediates_and_replay_agree_with_onnxruntime(onnx_torch_models):
    path, make_feeds = onnx_torch_models["resnet"]
    reference, runner = _load("onnxruntime:cpu", path), _load("torch:cpu", path)
    layers = runner.layers()
    names = [layer.name for layer in layers]
    assert len(names) >= 5 and names == [layer.name for layer in reference.layers()]
    feeds = make_feeds(2)
    expected = reference.intermediates(feeds, names)
    actual = runner.intermediates(feeds, names)
    assert set(actual) == set(expected) == set(names)
    for name in names:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-4, atol=1e-4, err_msg=name)

    picked = [names[1], names[len(names) // 2], names[-2]]
    calls = reference.layer_calls(feeds, picked)
    replayed = runner.replay(feeds, calls)
    reference_replay = reference.replay(feeds, calls)
    assert set(replayed) == set(reference_replay) == set(picked)
    for name in picked:
        np.testing.assert_allclose(replayed[name], reference_replay[name], rtol=1e-4, atol=1e-4, err_msg=name)
    assert all(count >= 1 for count in runner.info["replay_inputs_from_reference"].values())


@pytest.mark.gpu
@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU visible to torch")
@pytest.mark.parametrize("name", ["resnet", "bert"])
def test_exported_model_runs_on_cuda(name, onnx_torch_models):
    path, make_feeds = onnx_torch_models[name]
    reference = _load("onnxruntime:cpu", path)
    runner = _load("torch:cuda", path)
    assert runner.info["allow_tf32"] is False
    for batch in (1, 3):
        feeds = make_feeds(batch)
        _assert_same(runner.infer(feeds), reference.infer(feeds), rtol=1e-4, atol=1e-4)


def test_trainable_weights_get_gradients_through_forward(tmp_path):
    """``trainable`` + ``forward`` (no inference mode): the gradient of sum(x @ W) by W is x summed over the batch."""
    import onnx
    import torch

    from modelyard.runtime.onnx_torch import OnnxTorchProgram
    from support import matmul_onnx

    program = OnnxTorchProgram(onnx.load(str(matmul_onnx(tmp_path / "m.onnx", [[1.0, 2.0], [3.0, 4.0]]))))
    params = program.trainable({"W"})
    x = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    program.forward({"x": x})["y"].sum().backward()
    assert torch.equal(params["W"].grad, x.sum(dim=0)[:, None].expand(2, 2))
    with torch.no_grad():
        params["W"] -= 1.0  # what an optimiser step does: the next forward sees it
    assert torch.equal(program.forward({"x": x})["y"], x @ (torch.tensor([[1.0, 2.0], [3.0, 4.0]]) - 1.0))
