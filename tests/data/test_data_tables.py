"""Tabular imports: immutable versions, schema, seeded stratified split, stats, checks and every bad input."""

import pytest
from datafixtures import iris_csv, samples_dir  # noqa: F401  (fixtures)

from modelyard.core.errors import InvalidInput, NotFound
from modelyard.data.datasets import DatasetStore


@pytest.fixture
def store(workspace):
    return DatasetStore(workspace)


def _nothing_stored(store):
    assert store.list() == []


def test_import_iris_makes_an_immutable_version(store, iris_csv):
    version = store.import_path(iris_csv, "iris")
    assert version.ref == "iris@1" and version.kind == "tabular" and version.items == 150
    assert version.schema["label"] == "label" and version.schema["task"] == "classification"
    assert version.schema["classes"] == ["setosa", "versicolor", "virginica"]
    assert version.stats["per_class"] == {"setosa": 50, "versicolor": 50, "virginica": 50}
    # stratified 0.8/0.2: 10 of each class held out
    assert version.stats["per_class_split"]["validation"] == {"setosa": 10, "versicolor": 10, "virginica": 10}
    assert str(version).startswith("iris@1 (V001) tabular: 150 rows")
    frame, split = store.load_table(version)
    assert len(frame) == 150 and (split == "v").sum() == 30
    again = store.import_path(iris_csv, "iris")
    assert again.version == 2
    # same content, same blobs: the table is stored once
    assert store.manifest(again)["table"]["digest"] == store.manifest(version)["table"]["digest"]
    assert store.manifest(again)["split"] == store.manifest(version)["split"]  # seeded: the same split
    assert store.get("iris").version == 2 and store.get("iris@V001").id == version.id
    assert [v.version for v in store.versions("iris")] == [1, 2]
    assert store.check(version)  # 150 rows, 3 classes x 50: meets the minimums


def test_seed_and_fraction_change_the_split(store, iris_csv):
    a = store.import_path(iris_csv, "a", seed=1, validation_fraction=0.3)
    b = store.import_path(iris_csv, "b", seed=2, validation_fraction=0.3)
    assert a.split["counts"] == {"train": 105, "validation": 45}
    assert store.manifest(a)["split"] != store.manifest(b)["split"]


def test_regression_label_and_explicit_label(store, samples_dir):
    from modelyard.data.samples import write_tabular_sample

    path = write_tabular_sample("diabetes", samples_dir / "diabetes.csv")
    version = store.import_path(path, "diabetes")
    assert version.schema["task"] == "regression" and version.schema["classes"] == []
    assert version.split["stratified"] is False and "label" in version.stats
    by_sex = store.import_path(path, "diabetes-by-sex", label="sex", task="classification")
    assert by_sex.schema["label"] == "sex" and len(by_sex.schema["classes"]) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"   \n\n", "the file is empty"),
        (b"a,b,label\n", "has a header but no rows"),
        (b"a,b,c\n1,2,x\n3,4,x\n5,6,x\n", "has a single class ('x')"),
        (b"a,a,label\n1,2,x\n3,4,y\n", "duplicate column name(s) a"),
        (b"only\n1\n2\n", "only one column"),
        (b"\x00\x01\x02binary\x00,\x00\n", "binary file"),
        (b"a,b,label\n1,2,\n3,4,\n", "the label column 'label' is empty"),
    ],
)
def test_bad_tables_are_one_clear_message_and_store_nothing(store, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidInput) as info:
        store.import_path(path, "bad")
    assert message in str(info.value) and "bad.csv" in str(info.value)
    _nothing_stored(store)


def test_missing_label_column_names_the_columns(store, iris_csv):
    with pytest.raises(InvalidInput, match=r"no label column 'species'; columns are sepal length \(cm\)"):
        store.import_path(iris_csv, "iris", label="species")
    _nothing_stored(store)


def test_non_utf8_csv_is_decoded_and_noted(store, tmp_path):
    rows = ["city,temp,label"] + [f"Montréal,{i},{'hot' if i % 2 else 'cold'}" for i in range(120)]
    path = tmp_path / "latin.csv"
    path.write_bytes("\n".join(rows).encode("cp1252"))
    version = store.import_path(path, "latin")
    assert version.source["encoding"] == "cp1252"
    assert any("not UTF-8" in note for note in version.source["notes"])
    frame, _ = store.load_table(version)
    assert frame["city"].iloc[0] == "Montréal"


def test_mixed_types_become_numeric_with_a_note(store, tmp_path):
    rows = ["x,y,label"] + [f"{i},{'oops' if i == 5 else i * 2},{i % 3}" for i in range(120)]
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(rows))
    version = store.import_path(path, "mixed")
    y = next(c for c in version.schema["columns"] if c["name"] == "y")
    assert y["type"] == "numeric" and y["missing"] == 1
    assert any("mixes numbers with text" in n and "'oops'" in n for n in version.source["notes"])
    assert version.schema["classes"] == ["0", "1", "2"]


def test_parquet_import_and_broken_parquet(store, tmp_path):
    from modelyard.data.samples import tabular_sample

    path = tmp_path / "wine.parquet"
    tabular_sample("wine").to_parquet(path)
    version = store.import_path(path, "wine")
    assert version.source["format"] == "parquet" and version.items == 178
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InvalidInput, match="broken.parquet: not a readable Parquet file"):
        store.import_path(broken, "broken")


def test_small_table_is_blocked_by_the_check(store, tmp_path):
    rows = ["a,label"] + [f"{i},{'x' if i < 27 else 'y'}" for i in range(30)]
    path = tmp_path / "small.csv"
    path.write_text("\n".join(rows))
    result = store.check(store.import_path(path, "small"))
    assert not result
    assert "needs at least 100 rows, has 30" in str(result)
    assert "too few in y (3)" in str(result)
    assert result.to_dict()["trainable"] is False


def test_unknown_refs(store, iris_csv):
    with pytest.raises(NotFound, match="dataset 'nope' not found"):
        store.get("nope@1")
    store.import_path(iris_csv, "iris")
    with pytest.raises(NotFound, match="dataset iris has no version 7"):
        store.get("iris@7")
    with pytest.raises(InvalidInput, match="the version must be a number"):
        store.get("iris@x1")
