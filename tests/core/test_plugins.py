import pytest

from modelyard.core import plugins
from modelyard.core.errors import InvalidInput, Unavailable
from modelyard.core.ids import new_id
from modelyard.core.jobkind import JobKind


def test_every_registered_job_kind_loads_and_has_a_valid_default_contract():
    for name in plugins.job_kind_targets():
        kind = plugins.load_job_kind(name)
        assert isinstance(kind, JobKind) and kind.name == name and kind.description
        assert kind.spec_model.model_config.get("extra") == "forbid", f"{name}: unknown spec fields must be refused"


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(InvalidInput, match="known kinds: .*blob.verify, .*system.sleep"):
        plugins.load_job_kind("nope")


def test_bad_targets_say_what_failed(monkeypatch):
    with pytest.raises(InvalidInput, match="module:attr"):
        plugins.load_object("no_colon")
    with pytest.raises(Unavailable, match="cannot import no_such_module"):
        plugins.load_object("no_such_module:x")
    with pytest.raises(Unavailable, match="has no attribute 'NOPE'"):
        plugins.load_object("modelyard.jobs.builtin:NOPE")
    monkeypatch.setenv("MODELYARD_JOB_KINDS", "broken")
    with pytest.raises(InvalidInput, match="name=module:attr"):
        plugins.job_kind_targets()


def test_environment_kinds_cannot_shadow_builtins(monkeypatch):
    monkeypatch.setenv("MODELYARD_JOB_KINDS", "blob.verify=evil:KIND, extra.kind=pkg.mod:KIND")
    targets = plugins.job_kind_targets()
    assert targets["blob.verify"] == "modelyard.jobs.builtin:BLOB_VERIFY"
    assert targets["extra.kind"] == "pkg.mod:KIND"


def test_ids_are_unique_and_sort_by_time():
    import time

    first = new_id("job")
    time.sleep(0.002)
    later = [new_id("job") for _ in range(1000)]
    assert len(set(later)) == 1000
    assert all(first < other for other in later)
    assert later == sorted(later), "ids made within one millisecond still sort in creation order"
    assert first.startswith("job_") and len(first) == 24
