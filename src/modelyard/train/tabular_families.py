"""The model families tabular AutoML searches: their hyper-parameter spaces (Optuna), good starting points (tried
first, cheapest first, the way FLAML starts low-cost) and how each is fitted (LightGBM with early stopping on the
validation split and a hard deadline)."""

from __future__ import annotations

import os
import time

import numpy as np

FAMILIES = ("lightgbm", "linear", "random_forest", "extra_trees")
EARLY_STOPPING_ROUNDS = 50
MAX_BOOSTING_ROUNDS = 3000

# Tried before the sampler takes over, in this order; "family" picks the branch of the search space.
STARTING_POINTS = [
    {"family": "lightgbm", "lightgbm.learning_rate": 0.1, "lightgbm.num_leaves": 31,
     "lightgbm.min_child_samples": 20, "lightgbm.subsample": 1.0, "lightgbm.colsample_bytree": 1.0,
     "lightgbm.reg_lambda": 0.001},
    {"family": "linear", "linear.c": 1.0},
    {"family": "extra_trees", "extra_trees.n_estimators": 200, "extra_trees.max_features": "sqrt",
     "extra_trees.min_samples_leaf": 1},
    {"family": "lightgbm", "lightgbm.learning_rate": 0.05, "lightgbm.num_leaves": 8,
     "lightgbm.min_child_samples": 5, "lightgbm.subsample": 0.8, "lightgbm.colsample_bytree": 0.8,
     "lightgbm.reg_lambda": 0.1},
    {"family": "random_forest", "random_forest.n_estimators": 200, "random_forest.max_features": "sqrt",
     "random_forest.min_samples_leaf": 1},
]


def n_jobs() -> int:
    return max(1, os.cpu_count() or 1)


def suggest(trial, family: str, n_rows: int) -> dict:
    """Sample the hyper-parameters of ``family`` (names without the family prefix)."""
    if family == "lightgbm":
        return {
            "learning_rate": trial.suggest_float("lightgbm.learning_rate", 0.01, 0.3, log=True),
            "num_leaves": trial.suggest_int("lightgbm.num_leaves", 4, 256, log=True),
            "min_child_samples": trial.suggest_int("lightgbm.min_child_samples", 2, max(3, min(100, n_rows // 10)),
                                                   log=True),
            "subsample": trial.suggest_float("lightgbm.subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("lightgbm.colsample_bytree", 0.3, 1.0),
            "reg_lambda": trial.suggest_float("lightgbm.reg_lambda", 1e-3, 10.0, log=True),
        }
    if family == "linear":
        return {"c": trial.suggest_float("linear.c", 1e-3, 1e3, log=True)}
    return {
        "n_estimators": trial.suggest_int(f"{family}.n_estimators", 50, 500, step=50),
        "max_features": trial.suggest_categorical(f"{family}.max_features", ["sqrt", "0.5", "1.0"]),
        "min_samples_leaf": trial.suggest_int(f"{family}.min_samples_leaf", 1, 16, log=True),
    }


def build(family: str, task: str, params: dict, seed: int, n_estimators: int | None = None,
          threads: int | None = None):
    """An unfitted estimator of ``family`` with ``params``; ``n_estimators`` fixes LightGBM's rounds (a refit);
    ``threads`` caps its threads (a trial among others on one node; default all cores)."""
    classify = task == "classification"
    threads = threads or n_jobs()
    if family == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        cls = LGBMClassifier if classify else LGBMRegressor
        return cls(n_estimators=n_estimators or MAX_BOOSTING_ROUNDS, learning_rate=params["learning_rate"],
                   num_leaves=params["num_leaves"], min_child_samples=params["min_child_samples"],
                   subsample=params["subsample"], subsample_freq=1 if params["subsample"] < 1.0 else 0,
                   colsample_bytree=params["colsample_bytree"], reg_lambda=params["reg_lambda"],
                   random_state=seed, n_jobs=threads, verbose=-1)
    if family == "linear":
        if classify:
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=params["c"], max_iter=2000)
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1.0 / params["c"], random_state=seed)
    from sklearn import ensemble

    name = {"random_forest": "RandomForest", "extra_trees": "ExtraTrees"}[family]
    cls = getattr(ensemble, name + ("Classifier" if classify else "Regressor"))
    max_features = params["max_features"]
    return cls(n_estimators=params["n_estimators"],
               max_features=max_features if max_features == "sqrt" else float(max_features),
               min_samples_leaf=params["min_samples_leaf"], random_state=seed, n_jobs=threads)


def fit(family: str, estimator, x_train, y_train, x_val, y_val, deadline: float) -> tuple[object, dict]:
    """Fit; LightGBM stops early on the validation split (and at ``deadline``). Returns the estimator and what a
    refit needs to reproduce it (``{"n_estimators": best rounds}`` for LightGBM)."""
    if family != "lightgbm":
        estimator.fit(x_train, y_train)
        return estimator, {}
    import lightgbm as lgb

    def stop_at_deadline(env):
        if time.monotonic() > deadline:
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    stop_at_deadline.order = 40
    estimator.fit(x_train, y_train, eval_set=[(x_val, y_val)],
                  callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False), stop_at_deadline])
    best = estimator.best_iteration_ or estimator.n_estimators
    return estimator, {"n_estimators": int(best)}


def predict(estimator, task: str, x) -> np.ndarray:
    """Class probabilities ``(N, K)`` or predicted values ``(N,)``."""
    if task == "classification":
        return np.asarray(estimator.predict_proba(x), dtype=np.float64)
    return np.asarray(estimator.predict(x), dtype=np.float64).reshape(-1)


def full_probabilities(proba: np.ndarray, estimator_classes, n_classes: int) -> np.ndarray:
    """Probabilities over all ``n_classes`` even when the estimator saw fewer in training."""
    classes = np.asarray(estimator_classes)
    if proba.shape[1] == n_classes and (classes == np.arange(n_classes)).all():
        return proba
    out = np.zeros((proba.shape[0], n_classes))
    out[:, classes.astype(int)] = proba
    return out
