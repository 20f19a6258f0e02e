"""Batch inference names a text-classification dataset as the wrong input (its texts have no files to run on)."""

import pytest

from modelyard.core.errors import InvalidInput
from modelyard.data.datasets import DatasetStore
from modelyard.deploy.batch import BatchSpec, _input


def test_batch_inference_refuses_a_text_dataset_by_name(tmp_path, sqlite_workspace):
    (tmp_path / "t.csv").write_text("text,label\nhello,a\n")
    DatasetStore(sqlite_workspace).import_path(tmp_path / "t.csv", "words", kind="text-classification")
    with pytest.raises(InvalidInput, match="words@1 holds texts"):
        _input(BatchSpec(model="m", dataset="words@1"), sqlite_workspace, tmp_path / "work")
