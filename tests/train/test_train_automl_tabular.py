"""Tabular AutoML: the search, the deployable ONNX it returns, the latency contract, and the automl.train job."""

import numpy as np
import pytest
from trainfixtures import make_context, trained_home, trained_workspace  # noqa: F401  (fixtures)

from modelyard.core.errors import InvalidInput
from modelyard.train.automl_tabular import search_tabular
from modelyard.train.latency import session
from modelyard.train.tabular_model import read_metadata

pytestmark = pytest.mark.slow  # AutoML searches under a time budget


def _load(workspace, ref):
    from modelyard.data.datasets import DatasetStore

    store = DatasetStore(workspace)
    version = store.get(ref)
    frame, split = store.load_table(version)
    return version, frame, split


def test_classification_search_returns_a_deployable_model(trained_workspace):
    version, frame, split = _load(trained_workspace, "penguins@1")
    result = search_tabular(frame, split, version.schema, time_budget_s=600, max_trials=12, seed=1)
    assert result.task == "classification" and result.metric == "accuracy" and result.trials >= 1
    assert result.winner["score"] >= 0.9 and result.latency["p95_ms"] > 0
    scores = [e["score"] for e in result.leaderboard if e["accepted"] is not False and e["score"] is not None]
    assert scores == sorted(scores, reverse=True)
    sess = session(result.onnx)
    inputs = {i.name: i.type for i in sess.get_inputs()}
    assert inputs["island"] == "tensor(string)" and inputs["bill_length_mm"] == "tensor(float)"
    val = frame[split == "v"]
    feeds = result.features.feeds(result.features.frame(val))
    label, proba = sess.run(["label", "probabilities"], feeds)
    truth = np.array([result.classes.index(v) for v in val["label"]])
    assert (label == truth).mean() >= 0.9 and proba.shape == (len(val), 3)
    meta = read_metadata(result.onnx)
    assert meta["classes"] == ["Adelie", "Chinstrap", "Gentoo"] and meta["task"] == "classification"


def test_regression_search(trained_workspace):
    version, frame, split = _load(trained_workspace, "diabetes@1")
    result = search_tabular(frame, split, version.schema, time_budget_s=600, max_trials=12, metric="rmse")
    assert result.metric == "rmse" and not result.higher_is_better and result.winner["score"] < 70
    out = session(result.onnx).run(None, result.features.feeds(result.features.frame(frame.head(5))))
    assert out[0].shape == (5, 1)


def test_latency_limit_rejects_candidates(trained_workspace):
    version, frame, split = _load(trained_workspace, "iris@1")
    with pytest.raises(InvalidInput, match=r"max latency 1e-06 ms: no candidate met it .* \(fastest: "):
        search_tabular(frame, split, version.schema, time_budget_s=600, max_trials=4, max_latency_ms=1e-6,
                       ensemble=False)
    result = search_tabular(frame, split, version.schema, time_budget_s=600, max_trials=4, max_latency_ms=50.0,
                            families=("linear",))
    assert all(e["latency_ms"] is not None and e["accepted"] for e in result.leaderboard)
    assert result.latency["p95_ms"] <= 50.0


def test_bad_search_arguments(trained_workspace):
    version, frame, split = _load(trained_workspace, "iris@1")
    with pytest.raises(InvalidInput, match="metric 'r2' does not fit a classification task"):
        search_tabular(frame, split, version.schema, time_budget_s=1, metric="r2")
    with pytest.raises(InvalidInput, match="families"):
        search_tabular(frame, split, version.schema, time_budget_s=1, families=("xgboost",))
    with pytest.raises(InvalidInput, match="max trials: must be at least 1"):
        search_tabular(frame, split, version.schema, time_budget_s=1, max_trials=0)


def test_max_trials_bounds_the_search_and_makes_it_repeatable(trained_workspace):
    """With a seed and a trial count the budget never reaches, two searches do the same work and agree exactly."""
    version, frame, split = _load(trained_workspace, "diabetes@1")
    first, second = (search_tabular(frame, split, version.schema, time_budget_s=600, max_trials=5, metric="rmse",
                                    seed=3) for _ in range(2))
    assert sum(e["family"] != "ensemble" for e in first.leaderboard) == 5 and first.stop_reason == "max trials (5)"

    def work(result):
        return [(e["trial"], e["family"], e["params"], e["score"]) for e in result.leaderboard]

    assert work(first) == work(second) and first.winner["score"] == second.winner["score"]
    feeds = first.features.feeds(first.features.frame(frame))
    assert np.array_equal(session(first.onnx).run(None, feeds)[0], session(second.onnx).run(None, feeds)[0])


def test_automl_job_registers_the_winner_and_tracks_the_run(trained_home, trained_workspace):
    from modelyard.registry.versions import ModelRegistry
    from modelyard.train.tracking import RunStore

    _home, result, ctx = trained_home
    assert result["schema"] == "modelyard.automl/1" and result["model"] == "iris-model@1"
    assert set(result["leaderboard"][0]) >= {"family", "params", "score", "latency_ms", "accepted"}
    assert result["metric"] == "accuracy" and result["score"] >= 0.85
    version = ModelRegistry(trained_workspace).get_version("iris-model@1")
    assert version.lineage["dataset"] == "iris@1" and version.lineage["job"] == ctx.job_id
    assert version.metrics["val_accuracy"] == pytest.approx(result["score"])
    assert {t.name for t in version.signature.outputs} == {"label", "probabilities"}
    # lineage says which splits the model was fitted on; the signature names the classes for replies
    expected_fit = ["train", "validation"] if result["refitted"] else ["train"]
    assert version.lineage["fit_splits"] == result["fit_splits"] == expected_fit
    assert version.signature.class_names == ["setosa", "versicolor", "virginica"]
    assert "AutoML" in version.card and "iris@1" in version.card
    run = RunStore(trained_workspace).get(result["run"])
    assert run.status == "finished" and run.model == "iris-model@1" and run.dataset == "iris@1"
    assert {a["name"] for a in run.artifacts} == {"model.onnx", "automl.json"}
    assert any(line.startswith("trial 0 lightgbm") for line in ctx.lines)


def test_automl_job_refuses_a_blocked_dataset(tmp_path, make_context):
    from modelyard.core.settings import Settings
    from modelyard.data.datasets import DatasetStore
    from modelyard.store.workspace import Workspace
    from modelyard.train.automl import AutomlSpec, run_automl
    from modelyard.train.tracking import RunStore

    home = tmp_path / "home"
    workspace = Workspace.open(Settings.load(home))
    small = tmp_path / "small.csv"
    small.write_text("a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    DatasetStore(workspace).import_path(small, "small")
    ctx = make_context(home)
    with pytest.raises(InvalidInput, match="small@1 cannot be trained on: needs at least 100 rows, has 20"):
        run_automl(AutomlSpec(dataset="small@1", name="m", time_budget_s=1), ctx)
    with pytest.raises(InvalidInput, match="does not fit small@1, which holds classification data"):
        run_automl(AutomlSpec(dataset="small@1", name="m", task="regression", time_budget_s=1), ctx)
    assert RunStore(workspace).list() == []
    workspace.close()


def test_prefitted_soft_voting_ensemble_exports_to_onnx(trained_workspace):
    """The ensemble is built from already-fitted members (no refit) and must serve exactly their average."""
    from modelyard.train import tabular_families as fam
    from modelyard.train.automl_tabular import Candidate, _voting, encode_target
    from modelyard.train.tabular_model import Features, build_preprocessor, to_onnx

    version, frame, split = _load(trained_workspace, "iris@1")
    features = Features.from_schema(version.schema)
    pre = build_preprocessor(features)
    x = pre.fit_transform(features.frame(frame)).astype(np.float32)
    y = encode_target(frame, version.schema)
    members = []
    for index, (family, params) in enumerate((("linear", {"c": 1.0}), ("extra_trees", {
            "n_estimators": 50, "max_features": "sqrt", "min_samples_leaf": 1}))):
        candidate = Candidate(index, family, params)
        candidate.estimator = fam.build(family, "classification", params, 0).fit(x, y)
        members.append(candidate)
    voting = _voting(members, [2, 1], "classification")
    model = to_onnx(pre, voting, features, "classification", {"task": "classification"})
    proba = session(model).run(["probabilities"], features.feeds(features.frame(frame)))[0]
    expected = (2 * members[0].estimator.predict_proba(x) + members[1].estimator.predict_proba(x)) / 3
    assert np.abs(proba - expected).max() < 1e-3


def test_no_refit_keeps_the_validation_split_held_out(trained_workspace):
    version, frame, split = _load(trained_workspace, "iris@1")
    lines = []
    result = search_tabular(frame, split, version.schema, time_budget_s=600, max_trials=2, families=("linear",),
                            ensemble=False, refit=False, log=lines.append)
    assert not result.refitted and any("validation split stays held out" in line for line in lines)


def test_the_automl_hint_points_at_held_out_data():
    from modelyard.cli.automl import evaluate_hint

    refitted = evaluate_hint({"model": "m@1", "dataset": "d@1", "fit_splits": ["train", "validation"]})
    assert "--split" not in refitted and "--data TEST@1" in refitted and "--no-refit" in refitted
    held_out = evaluate_hint({"model": "m@1", "dataset": "d@1", "fit_splits": ["train"]})
    assert held_out.endswith("'modelyard evaluate m@1 --data d@1 --split validation'")
