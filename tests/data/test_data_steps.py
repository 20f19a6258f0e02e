"""Preprocessing steps make new versions with lineage; export writes a version back to plain files."""

import csv

import numpy as np
import pytest
from datafixtures import mnist_folder, mnist_small, samples_dir  # noqa: F401  (fixtures)

from modelyard.core.errors import InvalidInput
from modelyard.data.datasets import DatasetStore
from modelyard.data.steps import apply_step, apply_steps


@pytest.fixture
def store(sqlite_workspace):
    return DatasetStore(sqlite_workspace)


@pytest.fixture
def holey_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["a,b,notes,label"]
    for i in range(120):
        a = "" if i % 10 == 0 else f"{rng.normal():.3f}"
        rows.append(f"{a},{i},n{i},{'yes' if i % 3 else 'no'}")
    rows.append(rows[2])  # one duplicate row
    path = tmp_path / "holey.csv"
    path.write_text("\n".join(rows))
    return path


def test_table_steps_chain_with_lineage_and_keep_the_split(store, holey_csv):
    first = store.import_path(holey_csv, "holey")
    assert first.stats["missing"]["a"] == 12 and first.stats["duplicate_rows"] == 1
    assert next(c for c in first.schema["columns"] if c["name"] == "notes")["role"] == "ignored"
    made = apply_steps(store, "holey@1", [{"op": "drop-columns", "columns": ["notes"]},
                                          {"op": "dedupe"},
                                          {"op": "impute", "strategy": "median"}])
    assert [v.ref for v in made] == ["holey@2", "holey@3", "holey@4"]
    assert made[0].lineage["parent"] == "holey@1" and made[0].lineage["step"]["op"] == "drop-columns"
    assert made[1].items == 120 and made[1].lineage["step"]["removed"] == 1
    assert made[2].lineage["step"]["filled"] == 12 and made[2].stats["missing"]["a"] == 0
    frame1, split1 = store.load_table(first)
    frame4, split4 = store.load_table(made[2])
    assert "notes" not in frame4.columns
    assert "".join(split4.tolist()) == "".join(split1.tolist())[:120]  # survivors keep their side


def test_steps_that_do_not_apply_are_refused(store, holey_csv, mnist_folder):
    store.import_path(holey_csv, "holey")
    with pytest.raises(InvalidInput, match="'label' is the label column"):
        apply_step(store, "holey@1", {"op": "drop-columns", "columns": ["label"]})
    with pytest.raises(InvalidInput, match="no column"):
        apply_step(store, "holey@1", {"op": "drop-columns", "columns": ["zzz"]})
    with pytest.raises(InvalidInput, match="does not apply to tabular data"):
        apply_step(store, "holey@1", {"op": "resize", "width": 8, "height": 8})
    with pytest.raises(InvalidInput, match="strategy 'magic'"):
        apply_step(store, "holey@1", {"op": "impute", "strategy": "magic"})
    store.import_path(mnist_folder, "m")
    with pytest.raises(InvalidInput, match="has no corrupt images"):
        apply_step(store, "m@1", {"op": "filter-corrupt"})
    assert [v.version for v in store.versions("holey")] == [1]


def test_image_resize_and_dedupe(store, mnist_folder):
    store.import_path(mnist_folder, "m")
    resized = apply_step(store, "m@1", {"op": "resize", "width": 14, "height": 12})
    assert resized.stats["sizes"]["width"]["max"] == 14 and resized.stats["sizes"]["height"]["max"] == 12
    assert resized.lineage == {"parent": "m@1", "parent_id": store.get("m@1").id,
                               "step": {"op": "resize", "height": 12, "width": 14}}
    with pytest.raises(InvalidInput, match="no duplicate images"):
        apply_step(store, "m@2", {"op": "dedupe"})


def test_export_round_trip(store, holey_csv, mnist_folder, tmp_path):
    from modelyard.data.export import export_version

    table = store.import_path(holey_csv, "holey")
    out = export_version(table.to_dict(), store.manifest(table), store.blobs.read_bytes, tmp_path / "t")
    assert out["files"] == 2
    with open(tmp_path / "t" / "data.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 121 and {r["_split"] for r in rows} == {"train", "validation"}
    images = store.import_path(mnist_folder, "m")
    export_version(images.to_dict(), store.manifest(images), store.blobs.read_bytes, tmp_path / "i")
    assert len(list((tmp_path / "i").rglob("*.png"))) == 60
    again = store.import_path(tmp_path / "i", "m")
    assert store.manifest(again)["entries"][0]["digest"] == store.manifest(images)["entries"][0]["digest"]
    with pytest.raises(InvalidInput, match="exists and is not an empty folder"):
        export_version(images.to_dict(), store.manifest(images), store.blobs.read_bytes, tmp_path / "i")
