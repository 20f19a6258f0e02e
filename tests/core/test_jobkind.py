"""LocalJobContext: the shipped context for running a job kind in this process."""

from pathlib import Path

import pytest

from modelyard.core.jobkind import JobContext, LocalJobContext


def test_records_progress_and_log_lines_and_answers_cancel(tmp_path):
    ctx = LocalJobContext(home=tmp_path)
    assert ctx.workdir == tmp_path / "work" and ctx.job_id == "job_local" and not ctx.workdir.exists()
    ctx.progress(0.25, "a quarter")
    ctx.progress(0.25, "a quarter")  # no rate limit: a test sees every report
    ctx.log("hello")
    assert ctx.progress_events == [(0.25, "a quarter"), (0.25, "a quarter")] and ctx.lines == ["hello"]
    assert not ctx.cancelled()
    ctx.cancel()
    assert ctx.cancelled()


def test_on_progress_can_simulate_a_crash(tmp_path):
    def crash(fraction: float, message: str) -> None:
        if fraction >= 0.5:
            raise KeyboardInterrupt(message)

    ctx = LocalJobContext(home=str(tmp_path), workdir=str(tmp_path / "w"), on_progress=crash)
    assert ctx.home == tmp_path and ctx.workdir == Path(tmp_path / "w")
    ctx.progress(0.1)
    with pytest.raises(KeyboardInterrupt, match="half"):
        ctx.progress(0.5, "half")
    assert ctx.progress_events == [(0.1, ""), (0.5, "half")]


def test_it_has_every_member_of_the_protocol():
    members = {name for name in vars(JobContext) if not name.startswith("_")} | set(JobContext.__annotations__)
    assert members == {"job_id", "workdir", "home", "progress", "log", "cancelled"}
    assert all(hasattr(LocalJobContext(home=Path(".")), name) for name in members)
