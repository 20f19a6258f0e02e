"""A job kind only the tests register (through MODELYARD_JOB_KINDS): slow and idempotent."""

from modelyard.core.jobkind import JobKind
from modelyard.jobs.builtin import SleepSpec, sleep

SLOW_IDEMPOTENT = JobKind("test.slow-idempotent", SleepSpec, sleep, idempotent=True, description="test only")
