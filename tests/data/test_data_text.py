"""Text datasets (kind text): folders of text files split into paragraphs, JSONL/CSV layouts, dedup, stats, split,
and one clear error for what is not a text dataset."""

from __future__ import annotations

import json

import pytest

from modelyard.core.errors import InvalidInput


def test_folder_of_text_files_becomes_deduplicated_paragraphs_with_stats(sqlite_workspace, tmp_path):
    from modelyard.data.datasets import DatasetStore

    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("First paragraph here.\n\nSecond one, longer than the first.\n\n"
                                  "first  PARAGRAPH here.")
    (folder / "sub" / "b.md").write_text("# Title\n\nA markdown paragraph.")
    (folder / "ignored.bin").write_bytes(b"\0\1")
    store = DatasetStore(sqlite_workspace)
    version = store.import_path(folder, "docs", kind="text", validation_fraction=0.25)
    assert version.kind == "text" and version.items == 4 and version.stats["duplicates_removed"] == 1
    assert version.stats["tokens"] == 3 + 6 + 2 + 3 and version.stats["length_tokens"]["max"] == 6
    records = store.load_texts(version)
    assert {r["split"] for r in records} == {"train", "validation"}
    assert sum(r["split"] == "validation" for r in records) == 1


def test_jsonl_and_csv_layouts(sqlite_workspace, tmp_path):
    from modelyard.data.datasets import DatasetStore

    store = DatasetStore(sqlite_workspace)
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"instruction": f"q{i}", "response": f"a{i}"}) + "\n" for i in range(5)))
    assert store.import_path(qa, "qa", kind="text").schema == {"layout": "instruction",
                                                                "fields": ["instruction", "response"]}
    labeled = tmp_path / "labeled.csv"
    labeled.write_text("text,label\n" + "".join(f"sentence {i},{'ab'[i % 2]}\n" for i in range(6)))
    version = store.import_path(labeled, "labeled", kind="text")
    assert version.schema["classes"] == ["a", "b"] and version.stats["per_class"] == {"a": 3, "b": 3}
    assert version.split["stratified"] is True


@pytest.mark.parametrize(("name", "body", "message"), [
    ("bad.jsonl", '{"prompt": "x"}\n', "needs a 'text' column"),
    ("bad2.jsonl", '{"text": "x"}\nnot json\n', "line 2 is not JSON"),
    ("empty.csv", "text\nhello\n\"\"\n", "row 2 has an empty text"),
    ("one.txt", "only one paragraph", "at least 2 distinct records"),
    ("table.parquet", "x", "a text dataset is a folder of text files"),
])
def test_bad_text_input_is_one_clear_error_and_stores_nothing(sqlite_workspace, tmp_path, name, body, message):
    from modelyard.data.datasets import DatasetStore

    path = tmp_path / name
    path.write_text(body)
    store = DatasetStore(sqlite_workspace)
    with pytest.raises(InvalidInput, match=message):
        store.import_path(path, "bad", kind="text")
    assert store.list() == []


def test_a_text_dataset_is_checked_by_text_rules_not_table_rules(sqlite_workspace, tmp_path):
    from modelyard.data.datasets import DatasetStore

    store = DatasetStore(sqlite_workspace)
    (tmp_path / "docs.txt").write_text("One paragraph.\n\nAnother paragraph.\n\nA third one.\n\none PARAGRAPH.")
    check = store.check(store.import_path(tmp_path / "docs.txt", "docs", kind="text", validation_fraction=0.25))
    assert check.to_dict()["trainable"] and not any("rows" in p or "feature" in p for p in check.problems)
    assert any("1 exact duplicate" in w for w in check.warnings)
    (tmp_path / "one.csv").write_text("text,label\nfirst,a\nsecond,a\nthird,a\n")
    one_class = store.check(store.import_path(tmp_path / "one.csv", "one", kind="text"))
    assert not one_class and "at least 2 classes" in one_class.problems[0]
