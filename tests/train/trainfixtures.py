"""A workspace with sample datasets and one AutoML winner, built once per session, and job contexts to run kinds.

Not a conftest.py (a second ``conftest`` module would shadow ``tests/conftest.py`` for suites importing from it):
test modules import these fixtures by name, and the module-level cache builds the workspace once per session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.core.jobkind import LocalJobContext

_CACHE: dict = {}


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory):
    """``iris@1``, ``diabetes@1``, ``penguins@1`` imported; ``iris-model@1`` trained by the automl.train job."""
    if "trained_home" not in _CACHE:
        _CACHE["trained_home"] = _build_trained_home(tmp_path_factory)
    return _CACHE["trained_home"]


def _build_trained_home(tmp_path_factory):
    from modelyard.core.settings import Settings
    from modelyard.data.datasets import DatasetStore
    from modelyard.data.samples import write_tabular_sample
    from modelyard.store.workspace import Workspace
    from modelyard.train.automl import AutomlSpec, run_automl

    root = tmp_path_factory.mktemp("trained")
    home = root / "home"
    workspace = Workspace.open(Settings.load(home))
    store = DatasetStore(workspace)
    for name in ("iris", "diabetes", "penguins"):
        store.import_path(write_tabular_sample(name, root / f"{name}.csv"), name)
    workspace.close()
    ctx = LocalJobContext(home=home, workdir=root / "job", job_id="job_test")
    ctx.workdir.mkdir()
    result = run_automl(AutomlSpec(dataset="iris@1", name="iris-model", time_budget_s=600, max_trials=12), ctx)
    return home, result, ctx


@pytest.fixture
def trained_workspace(trained_home):
    from modelyard.core.settings import Settings
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(trained_home[0]))
    yield workspace
    workspace.close()


@pytest.fixture
def make_context(tmp_path):
    """``make_context(home)`` -> a LocalJobContext with a fresh work folder."""

    def make(home: Path) -> LocalJobContext:
        workdir = tmp_path / "job-work"
        workdir.mkdir(exist_ok=True)
        return LocalJobContext(home=home, workdir=workdir, job_id="job_test")

    return make
