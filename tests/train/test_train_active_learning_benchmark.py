"""``benchmarks/active_learning.py`` keeps its contract: any class-folder dataset with ``--data``, ``--seeds``, and
one JSON object as the last line with ``labels_to_target`` (``random`` included), ``default`` and
``saved_vs_random``."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # > 2.5 s (subprocesses or jobs): out of the inner loop, in make test
def test_benchmark_runs_on_an_image_folder_and_ends_with_one_json_line(tmp_path, capsys):
    _load("shapes_folder").write_shapes(tmp_path / "shapes", per_class=20, seed=1)
    report = _load("active_learning").main(["--data", str(tmp_path / "shapes"), "--seeds", "2", "--budget", "50",
                                            "--strategies", "margin,kcenter"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last == json.loads(json.dumps(report))
    assert set(last["labels_to_target"]) == {"random", "margin", "kcenter"}
    assert last["default"] == "margin" and last["seeds"] == 2 and last["items"] == 120 and last["classes"] == 6
    assert [n for n, _ in last["mean_curve"]["random"]] == [20, 30, 40, 50]
    random, margin = last["labels_to_target"]["random"], last["labels_to_target"]["margin"]
    if random is not None and margin is not None:
        assert last["saved_vs_random"] == round(1 - margin / random, 4)
    else:
        assert last["saved_vs_random"] is None
