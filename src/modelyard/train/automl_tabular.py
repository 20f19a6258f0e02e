"""Tabular AutoML: an Optuna search over model families and their hyper-parameters under a time budget, with the
deployment latency measured inside the search.

How a search runs:

1. The features are preprocessed once on the training split (median-impute + scale numbers, one-hot categories).
2. Known-good starting points of each family are tried first, then Optuna's TPE sampler takes over. LightGBM stops
   early on the validation split; the whole search stops at the deadline, after ``max_trials`` candidates, on
   cancel, when the score is perfect, or when many trials in a row brought no improvement. With ``max_trials`` and a
   budget it does not reach, the result depends only on the data and the seed, not on how busy the machine is
   (every candidate's fit is bounded by its hyper-parameters; time bounds only cut in at the deadline).
3. A candidate that could win (any candidate when a latency limit is set, else the current top five) is converted
   with its preprocessing to one ONNX graph and timed on onnxruntime with batch 1; over ``max_latency_ms`` it is
   rejected and the sampler is told it scored badly.
4. The best few accepted candidates are greedily ensembled (soft voting) when that improves the validation score
   and the ensemble, timed the same way, meets the limit.
5. The winner is refitted on train + validation when the budget allows, exported again and re-timed; if the refit
   misses the limit the validated model is kept, so the returned model always meets it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.train import metrics as m
from modelyard.train import tabular_families as fam
from modelyard.train.latency import measure_latency
from modelyard.train.tabular_model import Features, build_preprocessor, one_row, to_onnx

SEARCH_SHARE = 0.85  # of the budget; the rest is for the refit and the final export
TOP_MEASURED = 5
ENSEMBLE_POOL = 8
ENSEMBLE_ROUNDS = 6
TRIAL_SHARE = 0.25  # the most of the search time one LightGBM candidate may boost for


@dataclass
class Candidate:
    trial: int
    family: str
    params: dict
    score: float | None = None
    latency: dict | None = None
    accepted: bool | None = None
    fit_s: float = 0.0
    tiebreak: float = 0.0
    error: str | None = None
    refit: dict = field(default_factory=dict)
    estimator: object = field(default=None, repr=False)
    prediction: np.ndarray | None = field(default=None, repr=False)
    members: list = field(default_factory=list, repr=False)

    def entry(self) -> dict:
        return {
            "trial": self.trial,
            "family": self.family,
            "params": {**self.params, **self.refit},
            "score": None if self.score is None else round(float(self.score), 6),
            "latency_ms": None if self.latency is None else self.latency["p95_ms"],
            "latency_p50_ms": None if self.latency is None else self.latency["p50_ms"],
            "accepted": self.accepted,
            "fit_s": round(self.fit_s, 3),
            **({"error": self.error} if self.error else {}),
        }


@dataclass(frozen=True)
class TabularSearchResult:
    """What a search found: the deployable ONNX of the winner and the leaderboard of every candidate."""

    task: str
    metric: str
    higher_is_better: bool
    classes: tuple[str, ...]
    features: Features
    winner: dict
    leaderboard: tuple[dict, ...]
    onnx: bytes = field(repr=False)
    latency: dict
    refitted: bool
    trials: int
    seconds: float
    stop_reason: str

    def to_dict(self) -> dict:
        return {
            "task": self.task, "metric": self.metric, "higher_is_better": self.higher_is_better,
            "classes": list(self.classes), "features": self.features.to_dict(), "winner": self.winner,
            "leaderboard": list(self.leaderboard), "latency": self.latency, "refitted": self.refitted,
            "trials": self.trials, "seconds": round(self.seconds, 2), "stop_reason": self.stop_reason,
        }

    def __str__(self) -> str:
        return (f"{self.winner['family']} {self.metric}={self.winner['score']:.4f} "
                f"latency p95 {self.latency['p95_ms']:.3f} ms after {self.trials} trials in {self.seconds:.1f}s")


def encode_target(frame, schema: dict) -> np.ndarray:
    """Class indices (in ``schema["classes"]`` order) for classification, floats for regression."""
    label = frame[schema["label"]]
    if schema["task"] == "classification":
        from modelyard.data.tabular import class_name

        index = {name: i for i, name in enumerate(schema["classes"])}
        try:
            return np.array([index[class_name(v)] for v in label.tolist()], dtype=np.int64)
        except KeyError as exc:
            raise InvalidInput(f"label value {exc.args[0]!r} is not one of the model's classes") from None
    return label.astype(np.float64).to_numpy()


@dataclass(frozen=True)
class TrialData:
    """What every trial needs, preprocessed once: the splits and how to score (one object-store entry on Ray)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    task: str
    metric: str
    n_classes: int | None
    seed: int
    threads: int | None = None


def fit_trial(drawn: dict, data: TrialData) -> dict:
    """Fit and score one candidate (``drawn``: family, params, seconds of boosting allowed). A top-level function,
    so a Ray task can run it on any node; returns the fitted estimator and its validation prediction."""
    family, params = drawn["family"], drawn["params"]
    begin = time.monotonic()
    fitted = {"fit_s": 0.0, "refit": {}, "error": None, "score": None, "tiebreak": 0.0, "estimator": None,
              "prediction": None}
    try:
        estimator = fam.build(family, data.task, params, data.seed, threads=data.threads)
        estimator, fitted["refit"] = fam.fit(family, estimator, data.x_train, data.y_train, data.x_val,
                                             data.y_val, begin + drawn["seconds"])
        prediction = fam.predict(estimator, data.task, data.x_val)
        if data.task == "classification":
            prediction = fam.full_probabilities(prediction, estimator.classes_, data.n_classes)
        fitted["score"] = m.score(data.metric, data.y_val, prediction, data.n_classes)
        if data.task == "classification" and data.metric != "log_loss":
            # ties on a coarse metric (accuracy on a small validation split) go to the better-calibrated model
            fitted["tiebreak"] = m.score("log_loss", data.y_val, prediction, data.n_classes)
        fitted["estimator"], fitted["prediction"] = estimator, prediction
    except (ValueError, ArithmeticError, MemoryError) as exc:
        fitted["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    fitted["fit_s"] = time.monotonic() - begin
    return fitted


def search_tabular(
    frame,
    split: np.ndarray,
    schema: dict,
    *,
    metric: str | None = None,
    time_budget_s: float = 60.0,
    max_trials: int | None = None,
    max_latency_ms: float | None = None,
    families: tuple[str, ...] = fam.FAMILIES,
    ensemble: bool = True,
    refit: bool = True,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
    log: Callable[[str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    on_trial: Callable[[dict], None] | None = None,
    on_ray: bool = False,
    ray_address: str | None = None,
) -> TabularSearchResult:
    """Search for the best deployable model of a table.

    Args:
        frame: the table (a dataset version's rows).
        split: ``"t"``/``"v"`` per row (the version's fixed split).
        schema: the version's schema (label, task, classes, column roles).
        metric: what to optimise (default accuracy / r2); see ``modelyard.train.metrics``.
        time_budget_s: wall-clock budget for search and refit.
        max_trials: stop the search after this many candidates (or at the budget, whichever comes first).
        max_latency_ms: reject candidates whose p95 single-request latency on onnxruntime exceeds this.
        families: model families to search.
        ensemble: try a soft-voting ensemble of the best few.
        refit: refit the winner on train + validation when the budget allows (False keeps the validation split
            held out, so ``evaluate --split validation`` measures rows the model never saw).
        seed: seeds the sampler and the models.
        progress, log, cancelled: job hooks.
        on_trial: called with each finished candidate's leaderboard entry (for run tracking).
        on_ray: fit the trials as Ray tasks over the cluster's CPUs (``executor = "ray"``): Optuna asks and is
            told in this process, which also measures the contenders' latency, ensembles and refits; the
            preprocessed table goes into the object store once. Results arrive in whatever order the cluster
            finishes them, so a seeded search is not repeatable there as it is locally.
        ray_address: the cluster's GCS address; default the Ray Job's own cluster.
    """
    import optuna

    started = time.monotonic()
    task = schema["task"]
    if task not in ("classification", "regression"):
        raise InvalidInput(f"task {task!r}: tabular AutoML does classification or regression")
    unknown = [f for f in families if f not in fam.FAMILIES]
    if unknown or not families:
        raise InvalidInput(f"families {unknown or '[]'}: choose from {', '.join(fam.FAMILIES)}")
    if time_budget_s <= 0:
        raise InvalidInput("time budget: must be positive")
    if max_trials is not None and max_trials < 1:
        raise InvalidInput("max trials: must be at least 1")
    metric = m.check_metric(metric, task)
    greater = m.higher_is_better(metric)
    note = log or (lambda _msg: None)
    classes = tuple(schema.get("classes") or ())
    features = Features.from_schema(schema)
    x_all = features.frame(frame)
    y_all = encode_target(frame, schema)
    train, val = split == "t", split == "v"
    if not val.any() or not train.any():
        raise InvalidInput("the dataset version needs rows in both the train and validation splits")
    preprocessor = build_preprocessor(features)
    x_train = preprocessor.fit_transform(x_all[train]).astype(np.float32)
    x_val = preprocessor.transform(x_all[val]).astype(np.float32)
    y_train, y_val = y_all[train], y_all[val]
    val_feeds = features.feeds(x_all[val])
    latency_feed = one_row(val_feeds)
    n_classes = len(classes) if task == "classification" else None
    search_deadline = started + time_budget_s * SEARCH_SHARE
    final_deadline = started + time_budget_s
    metadata = {"task": task, "classes": list(classes), "features": features.to_dict(), "metric": metric}
    candidates: list[Candidate] = []
    state = {"best": None, "since_best": 0, "stop": "time budget"}
    patience = max(50, 25 * len(families))

    def value(score: float) -> float:
        return score if greater else -score

    def rank(c: Candidate) -> tuple[float, float]:
        # ties on a coarse metric (accuracy on a small validation split) go to the better-calibrated model
        return (value(c.score), -c.tiebreak)

    def export(estimator) -> bytes:
        return to_onnx(preprocessor, estimator, features, task, metadata)

    data = TrialData(x_train, y_train, x_val, y_val, task, metric, n_classes, seed,
                     threads=1 if on_ray else None)
    n_train = int(train.sum())

    def trial_seconds() -> float:
        # one slow configuration must not eat the whole search: boosting stops at a share of the budget
        now = time.monotonic()
        return max(0.0, min(search_deadline - now, max(1.0, TRIAL_SHARE * (search_deadline - started))))

    def record(number: int, family: str, params: dict, fitted: dict) -> float:
        """Book one fitted trial (here, whichever process fitted it): latency of contenders, acceptance, the
        running best, the log and the hooks; returns the value the sampler is told."""
        candidate = Candidate(number, family, params, fit_s=fitted["fit_s"], refit=fitted["refit"])
        candidates.append(candidate)
        if fitted["error"]:
            candidate.error, candidate.accepted = fitted["error"], False
            note(f"trial {number} {family} failed: {candidate.error}")
            return -1e9
        candidate.score, candidate.tiebreak = fitted["score"], fitted["tiebreak"]
        candidate.estimator, candidate.prediction = fitted["estimator"], fitted["prediction"]
        scored = sorted((rank(c) for c in candidates if c.score is not None and c.accepted is not False),
                        reverse=True)
        contender = len(scored) <= TOP_MEASURED or rank(candidate) > scored[TOP_MEASURED]
        if max_latency_ms is not None or contender:
            candidate.latency = measure_latency(export(candidate.estimator), latency_feed)
            candidate.accepted = max_latency_ms is None or candidate.latency["p95_ms"] <= max_latency_ms
        result = value(candidate.score) - 1e-4 * min(candidate.tiebreak, 10.0)
        if candidate.accepted is False:
            result -= 1.0  # tell the sampler: this region breaks the deployment contract
        elif state["best"] is None or rank(candidate) > rank(state["best"]):
            state["best"], state["since_best"] = candidate, 0
        else:
            state["since_best"] += 1
        entry = candidate.entry()
        note(f"trial {number} {family} {metric}={candidate.score:.4f}"
             + (f" latency p95 {candidate.latency['p95_ms']:.3f} ms" if candidate.latency else "")
             + (" REJECTED (over the latency limit)" if candidate.accepted is False else ""))
        if on_trial:
            on_trial(entry)
        if progress:
            elapsed = (time.monotonic() - started) / max(1e-9, search_deadline - started)
            best = state["best"]
            progress(min(0.85, 0.85 * elapsed), f"trial {number}: best "
                     + (f"{best.family} {metric}={best.score:.4f}" if best else "none accepted yet"))
        return result

    def suggest(trial) -> dict:
        family = trial.suggest_categorical("family", list(families))
        return {"family": family, "params": fam.suggest(trial, family, n_train), "seconds": trial_seconds()}

    def objective(trial) -> float:
        drawn = suggest(trial)
        return record(trial.number, drawn["family"], drawn["params"], fit_trial(drawn, data))

    def should_stop() -> bool:
        best = state["best"]
        if cancelled and cancelled():
            state["stop"] = "cancelled"
            return True
        if time.monotonic() >= search_deadline:
            return True
        if best is not None and greater and metric != "r2" and best.score >= 1.0 - 1e-12:
            state["stop"] = "perfect validation score"
            return True
        if state["since_best"] >= patience:
            state["stop"] = f"no improvement in {patience} trials"
            return True
        return False

    def stop(study, _trial) -> None:
        if should_stop():
            study.stop()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna flags multivariate TPE as experimental; LightGBM/sklearn chatter
        # on Ray several trials are in flight: the constant liar keeps the sampler from asking the same point twice
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=10, multivariate=True, group=True,
                                             constant_liar=on_ray)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for point in fam.STARTING_POINTS:
            if point["family"] in families:
                study.enqueue_trial(point, skip_if_exists=True)
        if on_ray:
            from modelyard.train.ray_trials import ask_tell_on_ray

            def tell(trial, drawn, fitted, error):
                if error is not None:  # the task itself died (a lost node, a missing package): a failed trial
                    record(trial.number, drawn["family"], drawn["params"],
                           {"fit_s": 0.0, "refit": {}, "error": f"trial task failed: {error[:200]}"})
                    return None
                return record(trial.number, drawn["family"], drawn["params"], fitted)

            outcome = ask_tell_on_ray(study, suggest, fit_trial, n_trials=max_trials, tell=tell, args=(data,),
                                      should_stop=should_stop, address=ray_address)
            note(f"{outcome.asked} trials ran as Ray tasks, up to {outcome.concurrency} in flight"
                 + (f"; {outcome.failed} failed (first: {outcome.first_error})" if outcome.failed else ""))
        else:
            study.optimize(objective, n_trials=max_trials, timeout=max(0.1, search_deadline - time.monotonic()),
                           callbacks=[stop], catch=())
        if state["stop"] == "time budget" and max_trials is not None and len(candidates) >= max_trials:
            state["stop"] = f"max trials ({max_trials})"
        winner = state["best"]
        if winner is None:
            measured = [c for c in candidates if c.latency]
            if max_latency_ms is not None and measured:
                fastest = min(measured, key=lambda c: c.latency["p95_ms"])
                raise InvalidInput(f"max latency {max_latency_ms} ms: no candidate met it in {len(candidates)} "
                                   f"trials (fastest: {fastest.family} at {fastest.latency['p95_ms']:.3f} ms p95)")
            errors = [c.error for c in candidates if c.error]
            if errors:
                raise InvalidInput(f"no candidate could be trained: {len(errors)} trial(s) failed, the first with "
                                   f"{errors[0]}")
            raise InvalidInput(f"no candidate could be trained in the time budget of {time_budget_s}s; "
                               "give a larger --time-budget")
        if ensemble and task in ("classification", "regression"):
            blended = _ensemble(candidates, winner, task, metric, greater, y_val, n_classes, export, latency_feed,
                                max_latency_ms, note)
            if blended is not None:
                candidates.append(blended)
                winner = blended
        model, latency, refitted = _refit(winner, task, seed, preprocessor, features, x_all, y_all, export,
                                          latency_feed, max_latency_ms, final_deadline if refit else None, note)
    if progress:
        progress(0.95, f"winner {winner.family} {metric}={winner.score:.4f}")
    board = sorted((c for c in candidates if c.score is not None), key=lambda c: (
        c.accepted is not False, rank(c)), reverse=True)
    board += [c for c in candidates if c.score is None]
    return TabularSearchResult(
        task=task, metric=metric, higher_is_better=greater, classes=classes, features=features,
        winner={**winner.entry(), "latency_ms": latency["p95_ms"], "latency_p50_ms": latency["p50_ms"]},
        leaderboard=tuple(c.entry() for c in board), onnx=model, latency=latency, refitted=refitted,
        trials=len(candidates), seconds=time.monotonic() - started, stop_reason=state["stop"],
    )


def _voting(members: list[Candidate], weights: list[int], task: str, estimators: list | None = None):
    """A soft-voting ensemble of fitted members (no refit), or unfitted with ``estimators`` given for one."""
    from sklearn.ensemble import VotingClassifier, VotingRegressor
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils import Bunch

    named = [(f"m{i}_{c.family}", est) for i, (c, est) in
             enumerate(zip(members, estimators or [c.estimator for c in members], strict=True))]
    weights = np.asarray(weights, dtype=np.float64)  # the ONNX converter needs an array
    if task == "classification":
        voting = VotingClassifier(named, voting="soft", weights=weights, flatten_transform=False)
    else:
        voting = VotingRegressor(named, weights=weights)
    if estimators is None:  # mark fitted: the members already are
        voting.estimators_ = [est for _, est in named]
        voting.named_estimators_ = Bunch(**dict(named))
        if task == "classification":
            voting.le_ = LabelEncoder().fit(members[0].estimator.classes_)
            voting.classes_ = voting.le_.classes_
    return voting


def _ensemble(candidates, winner, task, metric, greater, y_val, n_classes, export, latency_feed, max_latency_ms,
              note) -> Candidate | None:
    """Greedy forward selection with replacement (Caruana et al.) over the best accepted candidates."""
    pool = sorted((c for c in candidates if c.accepted is not False and c.prediction is not None),
                  key=lambda c: c.score if greater else -c.score, reverse=True)[:ENSEMBLE_POOL]
    if len(pool) < 2:
        return None

    def score_of(counts: dict[int, int]) -> float:
        total = sum(counts.values())
        blend = sum(pool[i].prediction * n for i, n in counts.items()) / total
        return m.score(metric, y_val, blend, n_classes)

    counts = {0: 1}
    best = score_of(counts)
    for _ in range(ENSEMBLE_ROUNDS):
        trial_scores = []
        for i in range(len(pool)):
            proposal = dict(counts)
            proposal[i] = proposal.get(i, 0) + 1
            trial_scores.append((score_of(proposal), i))
        top, index = max(trial_scores) if greater else min(trial_scores)
        if (top > best + 1e-4) if greater else (top < best - 1e-4):
            counts[index] = counts.get(index, 0) + 1
            best = top
        else:
            break
    if len(counts) < 2:
        return None
    members = [pool[i] for i in sorted(counts)]
    weights = [counts[i] for i in sorted(counts)]
    voting = _voting(members, weights, task)
    candidate = Candidate(-1, "ensemble", {"members": [f"{c.family}#{c.trial}" for c in members],
                                           "weights": weights}, score=best)
    candidate.members, candidate.estimator = members, voting
    candidate.fit_s = sum(c.fit_s for c in members)
    candidate.latency = measure_latency(export(voting), latency_feed)
    candidate.accepted = max_latency_ms is None or candidate.latency["p95_ms"] <= max_latency_ms
    note(f"ensemble of {len(members)} ({', '.join(candidate.params['members'])}) {metric}={best:.4f} latency p95 "
         f"{candidate.latency['p95_ms']:.3f} ms" + ("" if candidate.accepted else " REJECTED"))
    return candidate if candidate.accepted else None


def _refit(winner: Candidate, task, seed, preprocessor, features, x_all, y_all, export, latency_feed,
           max_latency_ms, final_deadline, note):
    """Refit the winner on train + validation when the budget allows (``final_deadline`` None: never); returns
    (onnx, latency, refitted)."""
    import copy

    validated = export(winner.estimator)
    validated_latency = winner.latency or measure_latency(validated, latency_feed)
    if final_deadline is None:
        note("kept the validated model (no refit asked for): the validation split stays held out")
        return validated, validated_latency, False
    expected = winner.fit_s * 1.5 + 0.2
    if time.monotonic() + expected > final_deadline:
        note(f"kept the validated model: a refit (~{expected:.1f}s) would overrun the budget")
        return validated, validated_latency, False
    members = winner.members or [winner]

    def rebuilt(c: Candidate):
        rounds = None
        if c.family == "lightgbm":
            rounds = max(1, int(round(c.refit.get("n_estimators", 100) * 1.1)))
        return fam.build(c.family, task, c.params, seed, n_estimators=rounds)

    full = copy.deepcopy(preprocessor)
    x_full = full.fit_transform(x_all).astype(np.float32)
    if winner.members:
        estimator = _voting(members, winner.params["weights"], task, [rebuilt(c) for c in members])
    else:
        estimator = rebuilt(winner)
    estimator.fit(x_full, y_all)
    model = to_onnx(full, estimator, features, task, _metadata_of(validated))
    latency = measure_latency(model, latency_feed)
    if max_latency_ms is not None and latency["p95_ms"] > max_latency_ms:
        note(f"the refitted model measured {latency['p95_ms']:.3f} ms p95, over the limit; kept the validated one")
        return validated, validated_latency, False
    note(f"refitted {winner.family} on train + validation ({len(y_all)} rows)")
    return model, latency, True


def _metadata_of(model: bytes) -> dict:
    from modelyard.train.tabular_model import read_metadata

    return read_metadata(model)
