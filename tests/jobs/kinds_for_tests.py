"""A job kind only the tests register (through MODELYARD_JOB_KINDS): slow and idempotent."""

from modelyard.core.jobkind import JobKind
from modelyard.jobs.builtin import SleepSpec, sleep

SLOW_IDEMPOTENT = JobKind("test.slow-idempotent", SleepSpec, sleep, idempotent=True, description="test only")


def _import_pandas(spec: SleepSpec, ctx) -> dict:
    import pandas  # noqa: F401 - the test hides it, as on a machine whose install set lacks it

    return {}


NEEDS_PANDAS = JobKind("test.needs-pandas", SleepSpec, _import_pandas, description="test only")
