"""``client.automl``: AutoML as one call (the ``automl.train`` job, submitted and waited for).

Example::

    result = client.automl.train("penguins@1", name="pc", time_budget_s=45)
    print(result["model"], result["metric"], result["score"])      # pc@1 accuracy 0.99
    client.evaluate(result["model"], "penguins-test@1")
"""

from __future__ import annotations


class Automl:
    def __init__(self, client):
        self._c = client

    def train(self, dataset: str, name: str, *, task: str = "auto", time_budget_s: float = 60.0,
              max_trials: int | None = None, max_latency_ms: float | None = None, metric: str | None = None,
              ensemble: bool = True, refit: bool = True, families: list[str] | None = None, seed: int = 0,
              description: str = "", register_winner: bool = True, timeout: float | None = None) -> dict:
        """Search models for ``dataset`` (``NAME@VERSION``) and register the winner as ``name``; returns the
        ``modelyard.automl/1`` result. The keyword arguments are the ``automl.train`` spec's keys (see
        ``modelyard jobs kinds automl.train``). A job that fails raises ``ModelyardError`` with its error."""
        spec = {"dataset": dataset, "name": name, "task": task, "time_budget_s": time_budget_s,
                "max_trials": max_trials, "max_latency_ms": max_latency_ms, "metric": metric, "ensemble": ensemble,
                "refit": refit,
                "families": families, "seed": seed, "description": description,
                "register_winner": register_winner}
        return self._c.jobs.result(self._c.jobs.run("automl.train", spec, timeout=timeout))


class Ladder:
    """``client.ladder``: fine-tuning up the L0 -> L1 -> L2 ladder (the ``tune`` job) and reading a model's ladder.

    Example::

        l1 = client.ladder.tune("smollm2@1", "pydocs@1", stage="pretrain", steps=20)
        l2 = client.ladder.tune(l1["model"], "pyqa@1", stage="sft", steps=20)
        client.ladder.lineage(l2["model"])     # L2 -> L1 -> L0 with digests, metrics and gates
    """

    def __init__(self, client):
        self._c = client

    def tune(self, base: str, data: str, *, stage: str = "pretrain", timeout: float | None = None, **options) -> dict:
        """Run a ``tune`` job and return its ``modelyard.tune/1`` result. ``options`` are the spec's other keys
        (``method``, ``output``, ``name``, ``steps``, ``batch_size``, ``learning_rate``, ``max_length``,
        ``lora_r``..., ``max_general_ppl_rise``; see ``modelyard jobs kinds tune``). A failed job raises
        ``ModelyardError`` with its error (a failed forgetting gate of the base, say)."""
        spec = {"base": base, "data": data, "stage": stage, **options}
        return self._c.jobs.result(self._c.jobs.run("tune", spec, timeout=timeout))

    def lineage(self, ref: str) -> dict:
        """The ladder under ``ref``: each level (L0 first) with its digest, dataset, evaluation and gate."""
        from urllib.parse import quote

        name, _, selector = ref.removeprefix("modelyard://").partition("@")
        return self._c.get_json(f"/api/v1/models/{quote(name)}/versions/{quote(selector or 'latest')}/ladder")
