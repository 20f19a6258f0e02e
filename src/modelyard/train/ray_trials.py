"""Search trials spread over a Ray cluster's CPUs: Optuna ask/tell in the driver, each trial a Ray task.

The driver (an AutoML job running as a Ray Job, or the benchmark) keeps the study; it asks Optuna for as many
trials as the cluster has free CPUs, runs each as a ``@ray.remote`` task, and tells the study each result as soon as
it arrives, so the sampler learns from finished trials while the others run (a steady-state asynchronous search,
as Ray Tune's). Inside a Ray Job ``ray.init()`` joins the job's cluster; elsewhere pass its GCS ``address``.
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
    import ray

    if not ray.is_initialized():
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    if concurrency is None:
        concurrency = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_trial))
    module = getattr(objective, "__module__", "__main__") or "__main__"
    if module not in ("__main__",) and not module.startswith("modelyard.") and module in sys.modules:
        # the nodes may not have the caller's module (a script, a notebook helper): ship its code with the task
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[module])
    remote = ray.remote(num_cpus=cpus_per_trial, max_retries=0)(objective)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed))
    started = time.monotonic()
    pending: dict = {}
    asked = failed = 0
    first_error = None
    while asked < n_trials or pending:
        while asked < n_trials and len(pending) < concurrency:
            trial = study.ask()
            params = suggest(trial)
            pending[remote.remote(params)] = (trial, params)
            asked += 1
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            trial, params = pending.pop(ref)
            try:
                value = float(ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - a trial's own error fails that trial, not the search
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                failed += 1
                value = None
                first_error = first_error or str(getattr(exc, "cause", None) or exc).strip().splitlines()[-1]
            else:
                study.tell(trial, value)
            if on_trial is not None:
                on_trial(trial.number, params, value)
    wall = time.monotonic() - started
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return TrialsResult(trials=len(study.trials), failed=failed,
                        best_value=study.best_value if completed else None,
                        best_params=study.best_params if completed else {}, wall_s=wall, concurrency=concurrency,
                        first_error=first_error)
