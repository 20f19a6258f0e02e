"""The reference a service's windows are compared with, as record columns like the captured ones.

* ``training`` (default): the dataset version named in the served model version's lineage (``lineage.dataset``,
  what AutoML records), its training split;
* ``NAME@V``: any dataset version (all of its rows);
* ``window:START..END``: the service's own captured traffic in that time range (ISO times or epoch seconds).

A dataset reference is fed through the served model once, on this machine, so the reference also has the model's
predictions (``p.class``/``p.score``/``p.value``): prediction drift compares like with like. Its columns go
through the same summaries as live traffic, and the result is cached per (model version, reference) in the
service's folder, so later reports read one Parquet file.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from modelyard.core.errors import InvalidInput, NotFound

MAX_REFERENCE_ROWS = 5000
CACHE_VERSION = "1"


@dataclass(frozen=True)
class Reference:
    source: str  # what it is, for people: "penguins@1 (training split, 5000 rows)"
    columns: dict[str, np.ndarray]

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


def _epoch(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"reference window: {text!r} is neither an ISO time nor epoch seconds") from None
    return value.timestamp()


def parse_window_reference(reference: str) -> tuple[float, float]:
    start, sep, end = reference.removeprefix("window:").partition("..")
    if not sep:
        raise InvalidInput(f"reference {reference!r}: window:START..END")
    return _epoch(start), _epoch(end)


def served_version(workspace, service: str):
    """The model version taking most of the service's live traffic (its desired one before it went live)."""
    from modelyard.deploy.services import ServiceStore, skill_entries
    from modelyard.registry.versions import ModelRegistry

    found = ServiceStore(workspace).get(service)
    revision = found.live or found.desired
    if skill_entries(revision.traffic):  # a skill service's requests are not a model's tensors: no drift reference
        raise InvalidInput(f"service {service!r} serves the skill {revision.traffic[0]['skill']}; monitoring "
                           "compares a model version's inputs with a reference, which a skill has none of")
    entry = max(revision.traffic, key=lambda t: t["weight"])
    return ModelRegistry(workspace).get_version_by_id(entry["version_id"])


def load_reference(workspace, service: str, reference: str, cache_dir: Path) -> Reference:
    """The reference columns (see the module docstring); raises InvalidInput/NotFound with the reason."""
    from modelyard.deploy.monitoring.segments import load_columns

    if reference.startswith("window:"):
        start, end = parse_window_reference(reference)
        columns = load_columns(workspace, service, "traffic", start, end)
        columns = {k: v for k, v in columns.items() if k.startswith(("f.", "s.", "e.", "p."))}
        return Reference(f"traffic {reference.removeprefix('window:')} ({_rows(columns)} rows)", columns)
    version = served_version(workspace, service)
    if reference == "training":
        dataset_ref = (version.lineage or {}).get("dataset")
        if not dataset_ref:
            raise NotFound(f"{version.ref} names no training dataset in its lineage; give the reference "
                           "explicitly ('modelyard monitor enable ... --reference NAME@V' or window:START..END)")
        split_name = "training split"
    else:
        dataset_ref, split_name = reference, "all rows"
    key = hashlib.sha256(f"{CACHE_VERSION}|{version.id}|{reference}|{dataset_ref}".encode()).hexdigest()[:24]
    cached = cache_dir / f"reference-{key}.parquet"
    if cached.exists():
        from modelyard.deploy.monitoring.segments import columns_from_parquet

        columns = columns_from_parquet(cached.read_bytes())
    else:
        columns = _dataset_columns(workspace, version, dataset_ref, only_training=reference == "training")
        from modelyard.deploy.monitoring.capture import columns_to_parquet

        data, _ = columns_to_parquet([{k: list(v) if k.startswith("e.") else v.tolist() for k, v in
                                       columns.items()}])
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(cached)
    return Reference(f"{dataset_ref} ({split_name}, {_rows(columns)} rows, predictions of {version.ref})", columns)


def _rows(columns: dict) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def _dataset_columns(workspace, version, dataset_ref: str, only_training: bool) -> dict[str, np.ndarray]:
    from modelyard.data.datasets import DatasetStore

    datasets = DatasetStore(workspace)
    dataset = datasets.get(dataset_ref)
    rng = np.random.default_rng(18)
    if dataset.kind == "tabular":
        feeds, rows = _table_feeds(datasets, dataset, version, only_training, rng)
    else:
        feeds, rows = _image_feeds(datasets, dataset, version, only_training, rng)
    from modelyard.deploy.monitoring.summaries import summarize_inputs, summarize_outputs

    columns, _ = summarize_inputs(feeds, rows, max_record_bytes=0)
    outputs = _predict(workspace, version, feeds, rows)
    columns.update(summarize_outputs(version.signature, outputs, rows))
    return {k: _as_array(k, v) for k, v in columns.items() if not k.startswith("r.")}


def _as_array(name: str, values: list) -> np.ndarray:
    if name.startswith("e."):
        return np.stack([np.asarray(v, np.float32) for v in values])
    array = np.asarray(values)
    if array.dtype.kind in "fiub":
        return array.astype(np.float64)
    return np.asarray(values, dtype=object)


def _table_feeds(datasets, dataset, version, only_training: bool, rng):
    from modelyard.data.tabular import frame_to_parquet
    from modelyard.deploy.batch_io import open_source

    frame, split = datasets.load_table(dataset)
    if only_training and (split == "t").any():
        frame = frame[split == "t"]
    if len(frame) > MAX_REFERENCE_ROWS:
        frame = frame.iloc[np.sort(rng.choice(len(frame), MAX_REFERENCE_ROWS, replace=False))]
    with tempfile.TemporaryDirectory(prefix="modelyard-reference-") as tmp:
        path = Path(tmp) / "reference.parquet"
        path.write_bytes(frame_to_parquet(frame.reset_index(drop=True)))
        source = open_source(path, version.signature)
        return source.read(0, len(source)), len(source)


def _image_feeds(datasets, dataset, version, only_training: bool, rng):
    from modelyard.deploy.images import preprocess, target_size

    signature = version.signature
    if signature.preprocessing is None:
        raise InvalidInput(f"{dataset.ref} holds images but {version.ref} takes no images")
    target = signature.input(signature.image_input)
    layout = signature.preprocessing.get("layout", "NCHW")
    channels = target.shape[1] if layout == "NCHW" else target.shape[3]
    size = target_size(signature.preprocessing, target)
    x, _, split, _ = datasets.load_images(dataset, size, int(channels) if isinstance(channels, int) else 3)
    if only_training and (split == "t").any():
        x = x[split == "t"]
    if len(x) > MAX_REFERENCE_ROWS:
        x = x[np.sort(rng.choice(len(x), MAX_REFERENCE_ROWS, replace=False))]
    batch = np.concatenate([preprocess(image.transpose(1, 2, 0), signature.preprocessing, target) for image in x])
    return {target.name: batch}, len(batch)


def _predict(workspace, version, feeds: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """The served model's outputs on the reference rows (onnxruntime or the machine's backend, in chunks)."""
    from modelyard.deploy.batch import _artifact
    from modelyard.deploy.loading import load_served

    _, runner = load_served(version, _artifact(workspace, version), "auto")
    chunk = 256 if version.signature.batchable else 1
    parts: dict[str, list] = {}
    for start in range(0, rows, chunk):
        out = runner.infer({k: v[start:start + chunk] for k, v in feeds.items()})
        for name, value in out.items():
            parts.setdefault(name, []).append(np.asarray(value))
    return {name: np.concatenate(values) for name, values in parts.items()}
