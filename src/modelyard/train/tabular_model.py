"""Tabular models as deployable ONNX: the feature preprocessing (median-impute + scale numbers, one-hot
categories) and the estimator form one scikit-learn pipeline, converted to one ONNX graph with one input per
column, so the served model takes raw column values exactly like the table it was trained on.

Conventions a caller of the ONNX model follows (recorded in the model's metadata): numeric and boolean columns are
``float32 [N, 1]`` with NaN for missing; categorical columns are ``string [N, 1]`` with ``""`` for missing.
Classifiers output ``label`` (class index, ``int64 [N]``) and ``probabilities`` (``float32 [N, K]``, classes in
``modelyard.classes`` order); regressors output ``variable`` (``float32 [N, 1]``).
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from modelyard.core.errors import InvalidInput

ONNX_OPSET = {"": 17, "ai.onnx.ml": 3}


@dataclass(frozen=True)
class Features:
    """Which columns feed the model, in order, and the ONNX input name of each."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    input_names: dict[str, str]  # column -> ONNX input name

    @classmethod
    def from_schema(cls, schema: dict) -> Features:
        numeric = tuple(c["name"] for c in schema["columns"] if c["role"] == "feature" and c["type"] in
                        ("numeric", "boolean"))
        categorical = tuple(c["name"] for c in schema["columns"] if c["role"] == "feature" and c["type"] ==
                            "categorical")
        names, used = {}, set()
        for column in numeric + categorical:
            base = re.sub(r"[^A-Za-z0-9_]", "_", column).strip("_") or "col"
            if base[0].isdigit():
                base = "c_" + base
            name, index = base, 1
            while name in used:
                index += 1
                name = f"{base}_{index}"
            used.add(name)
            names[column] = name
        return cls(numeric, categorical, names)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def to_dict(self) -> dict:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical), "inputs": self.input_names}

    def frame(self, table):
        """The feature columns of ``table`` in training form, named by their ONNX inputs (floats with NaN;
        strings with "" for missing)."""
        import pandas as pd

        missing = [c for c in self.columns if c not in table.columns]
        if missing:
            raise InvalidInput(f"the data lacks the model's feature column(s) {', '.join(missing[:10])}")
        out = pd.DataFrame(index=table.index)
        for column in self.numeric:
            out[self.input_names[column]] = pd.to_numeric(table[column], errors="coerce").astype(np.float32)
        for column in self.categorical:
            values = table[column]
            out[self.input_names[column]] = values.where(values.notna(), "").astype(str)
        return out

    def feeds(self, frame) -> dict[str, np.ndarray]:
        """ONNX feeds of a ``frame()`` (all rows)."""
        feeds = {self.input_names[c]: frame[[self.input_names[c]]].to_numpy(dtype=np.float32) for c in self.numeric}
        feeds.update({self.input_names[c]: frame[[self.input_names[c]]].to_numpy().astype(str).astype(object)
                      for c in self.categorical})
        return feeds


def build_preprocessor(features: Features):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if features.numeric:
        parts.append(("num", Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                                       ("scale", StandardScaler())]),
                      [features.input_names[c] for c in features.numeric]))
    if features.categorical:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32),
                      [features.input_names[c] for c in features.categorical]))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


@lru_cache(maxsize=1)
def _register_lightgbm() -> None:
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(LGBMClassifier, "LightGbmLGBMClassifier", calculate_linear_classifier_output_shapes,
                                convert_lightgbm, options={"nocl": [True, False], "zipmap": [True, False, "columns"]})
    update_registered_converter(LGBMRegressor, "LightGbmLGBMRegressor", calculate_linear_regressor_output_shapes,
                                convert_lightgbm, options={"split": None})


def to_onnx(preprocessor, estimator, features: Features, task: str, metadata: dict) -> bytes:
    """One ONNX graph for ``preprocessor`` + fitted ``estimator``; ``metadata`` lands in ``metadata_props``
    (values JSON-encoded) under ``modelyard.<key>``."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.pipeline import Pipeline

    _register_lightgbm()
    pipeline = Pipeline([("features", preprocessor), ("model", estimator)])
    types = [(features.input_names[c], FloatTensorType([None, 1])) for c in features.numeric]
    types += [(features.input_names[c], StringTensorType([None, 1])) for c in features.categorical]
    options = {id(estimator): {"zipmap": False}} if task == "classification" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # converters warn about opset choices we make on purpose
        model = convert_sklearn(pipeline, initial_types=types, options=options, target_opset=ONNX_OPSET)
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"modelyard.{key}", json.dumps(value)
    return model.SerializeToString()


def read_metadata(model: bytes) -> dict:
    """The ``modelyard.*`` metadata of an ONNX model, decoded."""
    import onnx

    proto = onnx.load_model_from_string(model)
    return {p.key.removeprefix("modelyard."): json.loads(p.value) for p in proto.metadata_props
            if p.key.startswith("modelyard.")}


def one_row(feeds: dict[str, np.ndarray], index: int = 0) -> dict[str, np.ndarray]:
    return {name: value[index:index + 1] for name, value in feeds.items()}
