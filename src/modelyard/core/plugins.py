"""The plugin registry: names map to ``"module:attr"`` strings, imported only when used.

Built-in job kinds are plugins too. Later packages add their kinds to ``JOB_KINDS`` here (one line each);
third parties register through the ``modelyard.job_kinds`` entry-point group.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from modelyard.core.errors import InvalidInput, Unavailable

# name -> "module:attr" of a modelyard.core.jobkind.JobKind
JOB_KINDS: dict[str, str] = {
    "blob.verify": "modelyard.jobs.builtin:BLOB_VERIFY",
    "system.sleep": "modelyard.jobs.builtin:SLEEP",
    "migrate.convert": "modelyard.migrate.model.jobs:CONVERT",
    "migrate.compare": "modelyard.migrate.model.jobs:COMPARE",
    "migrate.coverage": "modelyard.migrate.model.jobs:COVERAGE",
    "migrate.analyze": "modelyard.migrate.code.jobs:ANALYZE",
    "batch.predict": "modelyard.deploy.batch:BATCH_PREDICT",
    "migrate.apply": "modelyard.migrate.code.jobs:APPLY",
    "migrate.benchmark": "modelyard.migrate.pipeline.jobs:BENCHMARK",
    "migrate.optimize": "modelyard.migrate.pipeline.jobs:OPTIMIZE",
    "migrate.run": "modelyard.migrate.pipeline.jobs:RUN",
    "automl.train": "modelyard.train.automl:AUTOML",
    "evaluate": "modelyard.train.evaluate:EVALUATE",
    "label.propose": "modelyard.deploy.prelabel:PROPOSE",
    "label.suggest": "modelyard.train.label_suggest:SUGGEST",
    "label.group": "modelyard.train.label_suggest:GROUP",
    "train": "modelyard.train.user_jobs:TRAIN",
    "tune": "modelyard.train.tune:TUNE",
    "edge.package": "modelyard.edge.jobs:PACKAGE",
}


def load_object(target: str):
    """Import ``"package.module:attr"`` and return the attribute; errors say which part failed."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise InvalidInput(f"plugin target {target!r} must look like 'package.module:attr'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise Unavailable(f"cannot import {module_name} for plugin {target!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise Unavailable(f"{module_name} has no attribute {attr!r} (plugin {target!r})") from exc


def job_kind_targets() -> dict[str, str]:
    """Every registered job kind: built-ins, then entry points and ``MODELYARD_JOB_KINDS``
    (``"name=module:attr,name2=module2:attr"``), which cannot shadow built-ins."""
    kinds = dict(JOB_KINDS)
    for ep in entry_points(group="modelyard.job_kinds"):
        kinds.setdefault(ep.name, ep.value)
    for item in filter(None, (part.strip() for part in os.environ.get("MODELYARD_JOB_KINDS", "").split(","))):
        name, sep, target = item.partition("=")
        if not sep:
            raise InvalidInput(f"MODELYARD_JOB_KINDS entry {item!r} must look like name=module:attr")
        kinds.setdefault(name.strip(), target.strip())
    return kinds


def load_job_kind(name: str):
    """Return the ``JobKind`` registered as ``name``; an unknown name lists the known ones."""
    if name in JOB_KINDS:  # built-ins need no scan of installed packages' entry points (~50 ms per process)
        return load_object(JOB_KINDS[name])
    targets = job_kind_targets()
    if name not in targets:
        raise InvalidInput(
            f"unknown job kind {name!r}; known kinds: {', '.join(sorted(targets))}", code="unknown_job_kind"
        )
    return load_object(targets[name])
