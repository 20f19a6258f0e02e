"""Tabular AutoML against FLAML at the same time budget on five bundled datasets, same splits, same run.

Each dataset is split once (seed 0): 25 % held-out test (stratified for classification), the rest into the same
80/20 train/validation split Modelyard stores with a dataset version. Both systems get the train rows to fit and
the validation rows to select on (FLAML: ``X_val``/``y_val``, holdout), the same budget and the same metric
(accuracy / R²), and are scored on the untouched test rows. FLAML searches LightGBM, random forest, extra trees
and L1 logistic regression (its default list minus XGBoost, which is not installed here). Lower mean rank is better;
the goal is a mean rank at or below FLAML's.

    python benchmarks/automl_tabular.py [--budget 60] [--datasets breast_cancer,wine,...]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

DATASETS = ("breast_cancer", "wine", "digits", "penguins", "diabetes")


def _splits(frame, schema, seed=0):
    from modelyard.data.splits import stratified_split

    labels = frame[schema["label"]].tolist() if schema["task"] == "classification" else None
    outer = stratified_split(labels, len(frame), 0.25, seed)
    rest = frame[outer == "t"].reset_index(drop=True)
    test = frame[outer == "v"].reset_index(drop=True)
    inner_labels = rest[schema["label"]].tolist() if labels is not None else None
    return rest, stratified_split(inner_labels, len(rest), 0.2, seed), test


def _modelyard(rest, split, test, schema, budget):
    from modelyard.train.automl_tabular import encode_target, search_tabular
    from modelyard.train.latency import session
    from modelyard.train.metrics import score

    started = time.monotonic()
    result = search_tabular(rest, split, schema, time_budget_s=budget)
    seconds = time.monotonic() - started
    sess = session(result.onnx, threads=2)
    feeds = result.features.feeds(result.features.frame(test))
    y = encode_target(test, schema)
    if schema["task"] == "classification":
        proba = sess.run(["probabilities"], feeds)[0]
        return score("accuracy", y, proba), seconds, f"{result.winner['family']} ({result.trials} trials)"
    pred = sess.run(["variable"], feeds)[0].reshape(-1)
    return score("r2", y, pred), seconds, f"{result.winner['family']} ({result.trials} trials)"


def _import_flaml():
    """FLAML's AutoML module imports xgboost unconditionally, but xgboost is not installed here (and not needed:
    it is left out of FLAML's estimator list below, as Modelyard has no XGBoost family either). A placeholder
    module lets the import succeed; any real use of it would fail loudly."""
    import sys
    import types

    try:
        import xgboost  # noqa: F401
    except ImportError:
        placeholder = types.ModuleType("xgboost")
        placeholder.__version__ = "0.0-not-installed"

        class NotInstalled:
            """Stands in for xgboost's estimators, which are not installed."""

            def __init__(self, *args, **kwargs):
                raise ImportError("xgboost is not installed")

            def fit(self, *args, **kwargs):
                raise ImportError("xgboost is not installed")

            predict = predict_proba = fit

        placeholder.XGBClassifier = placeholder.XGBRegressor = NotInstalled
        sys.modules["xgboost"] = placeholder
    from flaml.automl import AutoML

    return AutoML


def _flaml(rest, split, test, schema, budget):
    AutoML = _import_flaml()

    from modelyard.train.metrics import score

    features = [c["name"] for c in schema["columns"] if c["role"] == "feature"]
    train, val = rest[split == "t"], rest[split == "v"]
    automl = AutoML()
    task = schema["task"]
    started = time.monotonic()
    automl.fit(X_train=train[features], y_train=train[schema["label"]], X_val=val[features],
               y_val=val[schema["label"]], task=task, metric="accuracy" if task == "classification" else "r2",
               time_budget=budget, eval_method="holdout", verbose=0, seed=0, n_jobs=2,
               estimator_list=["lgbm", "rf", "extra_tree", "lrl1"] if task == "classification"
               else ["lgbm", "rf", "extra_tree"])
    seconds = time.monotonic() - started
    pred = automl.predict(test[features])
    truth = test[schema["label"]].to_numpy()
    if task == "classification":
        return float((np.asarray(pred) == truth).mean()), seconds, str(automl.best_estimator)
    return score("r2", truth.astype(float), np.asarray(pred, dtype=float)), seconds, str(automl.best_estimator)


def main() -> None:
    from modelyard.data.samples import tabular_sample
    from modelyard.data.tabular import TableFile, prepare_table, read_table

    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--data", type=Path, action="append", default=[],
                        help="a CSV table to use instead of the bundled samples (repeatable); --label names its column")
    parser.add_argument("--label", default="label", help="the label column of the --data tables (default label)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows, ranks = [], {"modelyard": [], "flaml": []}
    tables = ([(path.stem, read_table(path), args.label) for path in args.data] if args.data
              else [(name, TableFile(tabular_sample(name), "csv", "utf-8"), "label")
                    for name in args.datasets.split(",")])
    for name, table, label in tables:
        frame, schema, _ = prepare_table(table, name, label=label)
        rest, split, test = _splits(frame, schema)
        ours = _modelyard(rest, split, test, schema, args.budget)
        theirs = _flaml(rest, split, test, schema, args.budget)
        metric = "accuracy" if schema["task"] == "classification" else "r2"
        if abs(ours[0] - theirs[0]) < 1e-12:
            r_ours = r_theirs = 1.5
        else:
            r_ours, r_theirs = (1, 2) if ours[0] > theirs[0] else (2, 1)
        ranks["modelyard"].append(r_ours)
        ranks["flaml"].append(r_theirs)
        rows.append((name, metric, len(test), ours, theirs, r_ours, r_theirs))
        print(f"{name:<14} {metric:<9} test={len(test):<4} modelyard {ours[0]:.4f} ({ours[1]:.0f}s, {ours[2]})  "
              f"flaml {theirs[0]:.4f} ({theirs[1]:.0f}s, {theirs[2]})", flush=True)
    print(f"\nbudget {args.budget:.0f}s per system per dataset; score on the held-out 25 % test rows")
    met = bool(np.mean(ranks["modelyard"]) <= np.mean(ranks["flaml"]))
    print(
        f"mean rank: modelyard {np.mean(ranks['modelyard']):.2f}, flaml {np.mean(ranks['flaml']):.2f} "
        f"(goal: modelyard <= flaml: {'met' if met else 'NOT met'})"
    )
    print(json.dumps({"schema": "modelyard.bench-automl-tabular/1", "budget_s": args.budget,
                      "datasets": [{"name": r[0], "metric": r[1], "test_rows": r[2], "modelyard": r[3][0],
                                    "flaml": r[4][0]} for r in rows],
                      "mean_rank": {k: float(np.mean(v)) for k, v in ranks.items()}, "goal_met": met}))


if __name__ == "__main__":
    main()
