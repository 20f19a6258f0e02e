"""Search trials spread over a Ray cluster's CPUs: Optuna ask/tell in the driver, each trial a Ray task.

The driver (an AutoML job running as a Ray Job, or the benchmark) keeps the study; it asks Optuna for as many
trials as the cluster has free CPUs, runs each as a ``@ray.remote`` task, and tells the study each result as soon as
it arrives, so the sampler learns from finished trials while the others run (a steady-state asynchronous search,
as Ray Tune's). Inside a Ray Job ``ray.init()`` joins the job's cluster; elsewhere pass its GCS ``address``.

The objective must be a picklable top-level function; its large inputs (a training table) go into the object store
once (``ray.put``) and every task gets them by reference, not copied into each task's closure.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TrialsResult:
    trials: int
    failed: int
    best_value: float | None
    best_params: dict
    wall_s: float
    concurrency: int
    first_error: str | None = None

    def to_dict(self) -> dict:
        return {"trials": self.trials, "failed": self.failed, "best_value": self.best_value,
                "best_params": self.best_params, "wall_s": self.wall_s, "concurrency": self.concurrency,
                "first_error": self.first_error}


@dataclass(frozen=True)
class AskTellOutcome:
    asked: int
    failed: int
    concurrency: int
    first_error: str | None


def join_cluster(address: str | None = None) -> None:
    """``ray.init`` once: the GCS ``address``, else the Ray Job's own cluster (``RAY_ADDRESS``), else a cluster
    already running on this machine ("auto"); never a new private cluster by accident."""
    import os

    import ray

    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or "auto", logging_level="ERROR",
                 log_to_driver=False)


def _error_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    lines = str(cause).strip().splitlines() or [type(cause).__name__]
    return lines[-1]


def ask_tell_on_ray(study, suggest: Callable, objective: Callable, *, n_trials: int | None,
                    tell: Callable[[object, dict, object, str | None], float | None], args: tuple = (),
                    should_stop: Callable[[], bool] | None = None, cpus_per_trial: float = 1.0,
                    concurrency: int | None = None, address: str | None = None) -> AskTellOutcome:
    """Run ``objective(params, *args)`` for trials asked from ``study``, as Ray tasks, until ``n_trials`` (None: no
    limit) or ``should_stop()``.

    Args:
        study: an Optuna study (its sampler, direction and enqueued trials are the caller's).
        suggest: ``suggest(trial) -> params`` (runs in the driver, so the sampler sees every parameter).
        objective: a picklable top-level function ``objective(params, *args) -> output``; runs on any node.
        n_trials: the most trials to ask; None runs until ``should_stop``.
        tell: ``tell(trial, params, output, error) -> value`` in the driver when a trial ends (``error`` is the
            task's error line, output None then); the study is told ``value``, or the trial FAILs when it is None.
        args: extra arguments of every call; each goes into the object store once and travels by reference.
        should_stop: checked after every finished trial; True stops asking (the trials in flight still finish).
        cpus_per_trial: CPUs each trial reserves. Default 1.
        concurrency: trials in flight; default the cluster's CPUs / ``cpus_per_trial``.
        address: the cluster's GCS address; default the job's cluster.
    """
    import optuna
    import ray

    join_cluster(address)
    if concurrency is None:
        concurrency = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_trial))
    module = getattr(objective, "__module__", "__main__") or "__main__"
    if module not in ("__main__",) and not module.startswith("modelyard.") and module in sys.modules:
        # the nodes may not have the caller's module (a script, a notebook helper): ship its code with the task
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[module])
    remote = ray.remote(num_cpus=cpus_per_trial, max_retries=0)(objective)
    refs = [ray.put(arg) for arg in args]  # once; a top-level ObjectRef argument arrives in the task as its value
    pending: dict = {}
    asked = failed = 0
    first_error = None
    stopping = False
    while pending or not (stopping or (n_trials is not None and asked >= n_trials)):
        while not stopping and (n_trials is None or asked < n_trials) and len(pending) < concurrency:
            trial = study.ask()
            params = suggest(trial)
            pending[remote.remote(params, *refs)] = (trial, params)
            asked += 1
        if not pending:
            break
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            trial, params = pending.pop(ref)
            output, error = None, None
            try:
                output = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a trial's own error fails that trial, not the search
                error = _error_line(exc)
                first_error = first_error or error
            value = tell(trial, params, output, error)
            if value is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                failed += 1
            else:
                study.tell(trial, float(value))
            if should_stop is not None and should_stop():
                stopping = True
    return AskTellOutcome(asked=asked, failed=failed, concurrency=concurrency, first_error=first_error)


def run_trials_on_ray(objective: Callable[[dict], float], suggest: Callable, n_trials: int,
                      direction: str = "minimize", address: str | None = None, seed: int = 0,
                      cpus_per_trial: float = 1.0, concurrency: int | None = None,
                      on_trial: Callable[[int, dict, float | None], None] | None = None) -> TrialsResult:
    """Run ``n_trials`` of ``objective(params) -> value`` as Ray tasks.

    Args:
        objective: a picklable function of the trial's params; it runs on any node of the cluster.
        suggest: ``suggest(trial) -> params``: draws params from an Optuna trial (runs in the driver).
        n_trials: how many trials.
        direction: ``"minimize"`` or ``"maximize"``.
        address: the cluster's GCS address (``host:6379``); default the job's cluster (``ray.init()``).
        seed: the sampler's seed.
        cpus_per_trial: CPUs each trial reserves. Default 1.
        concurrency: trials in flight; default the cluster's CPUs / ``cpus_per_trial``.
        on_trial: called as ``(number, params, value or None)`` when a trial ends.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed))
    started = time.monotonic()

    def tell(trial, params, output, error):
        value = None if error is not None else float(output)
        if on_trial is not None:
            on_trial(trial.number, params, value)
        return value

    outcome = ask_tell_on_ray(study, suggest, objective, n_trials=n_trials, tell=tell, cpus_per_trial=cpus_per_trial,
                              concurrency=concurrency, address=address)
    wall = time.monotonic() - started
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return TrialsResult(trials=len(study.trials), failed=outcome.failed,
                        best_value=study.best_value if completed else None,
                        best_params=study.best_params if completed else {}, wall_s=wall,
                        concurrency=outcome.concurrency, first_error=outcome.first_error)
