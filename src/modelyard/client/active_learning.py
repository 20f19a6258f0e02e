"""``client.active_learning``: labeling suggestions and auto grouping as one call each (the ``label.suggest`` and
``label.group`` jobs, submitted and waited for).

Example::

    result = client.active_learning.suggest("pets@3", strategy="margin", batch=10)
    [(p["item"], p["arm"], p["hard"]) for p in result["proposals"]]
    result["gain"]["advantage"], result["learning_curve"]["random"]
    groups = client.active_learning.group("pets@3", k=20)
"""

from __future__ import annotations


class ActiveLearning:
    def __init__(self, client):
        self._c = client

    def suggest(self, dataset: str | None = None, *, labeling_job: str | None = None, strategy: str = "margin",
                batch: int = 10, control_fraction: float = 0.1, unlabeled_class: str = "unlabeled",
                labeled: list[str] | None = None, after: str | None = None, hard_threshold: float = 0.5, seed: int = 0,
                timeout: float | None = None, **rule) -> dict:
        """The next batch to label on ``dataset`` (``NAME@VERSION``) or ``labeling_job``; returns the
        ``modelyard.label-suggest/1`` result. Keyword arguments are the ``label.suggest`` spec's keys (``margin``,
        ``patience``, ``min_control`` tune the fallback rule). A job that fails raises ``ModelyardError`` with its
        error."""
        spec = {"dataset": dataset, "labeling_job": labeling_job, "strategy": strategy, "batch": batch,
                "control_fraction": control_fraction, "unlabeled_class": unlabeled_class, "labeled": labeled,
                "after": after, "hard_threshold": hard_threshold, "seed": seed, **rule}
        return self._c.jobs.result(self._c.jobs.run("label.suggest", spec, timeout=timeout))

    def group(self, dataset: str, *, k: int = 10, unlabeled_class: str = "unlabeled", include_labeled: bool = False,
              seed: int = 0, timeout: float | None = None) -> dict:
        """Cluster the unlabeled images of ``dataset`` into ``k`` groups (2-200); returns
        ``modelyard.label-groups/1``."""
        spec = {"dataset": dataset, "k": k, "unlabeled_class": unlabeled_class, "include_labeled": include_labeled,
                "seed": seed}
        return self._c.jobs.result(self._c.jobs.run("label.group", spec, timeout=timeout))
