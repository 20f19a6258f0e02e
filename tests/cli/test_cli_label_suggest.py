"""``modelyard label suggest`` as a user runs it (in-process: the command drives a worker itself); ``label group``
runs the same job machinery and is covered by tests/train/test_train_label_suggest.py."""

import pytest

from support import run_cli


@pytest.fixture(scope="module")
def digits_home(tmp_path_factory):
    """A workspace holding ``d@1``: 40 labeled digits (0 and 1) and 60 in ``unlabeled/``."""
    from sklearn.datasets import load_digits

    from modelyard.core.settings import Settings
    from modelyard.data.datasets import DatasetStore
    from modelyard.data.images import encode_png
    from modelyard.store.workspace import Workspace

    root = tmp_path_factory.mktemp("cli-label")
    digits = load_digits()
    picks = [i for i, target in enumerate(digits.target) if target in (0, 1)][:100]
    for n, index in enumerate(picks):
        folder = root / "d" / ("unlabeled" if n >= 40 else str(digits.target[index]))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index}.png").write_bytes(encode_png((digits.images[index] * 15).astype("uint8")))
    workspace = Workspace.open(Settings.load(root / "home"))
    DatasetStore(workspace).import_path(root / "d", "d")
    workspace.close()
    return root / "home"


@pytest.mark.slow  # > 2.5 s (subprocesses or jobs): out of the inner loop, in make test
def test_bad_dataset_is_one_line_on_stderr(digits_home):
    proc = run_cli("label", "suggest", "nope@1", home=digits_home)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["error: dataset 'nope' not found"], proc.stderr


@pytest.mark.slow
def test_label_suggest(digits_home):
    human = run_cli("label", "suggest", "d@1", "--strategy", "margin", "--batch", "5", home=digits_home,
                    check=True).stdout
    assert "d@1 round 1: 5 item(s) by margin" in human and "control" in human and "unlabeled/" in human
