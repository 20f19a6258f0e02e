"""The CLI as a user runs it: real processes, one-line errors, --json schemas."""

import json
import os

import pytest

from support import run_cli


@pytest.fixture(scope="module")
def initialised(tmp_path_factory):
    """One ``modelyard init`` (its output kept for the test of init) whose workspace the tests below share: they
    only read it, or add a job no other test looks at."""
    home = tmp_path_factory.mktemp("cli") / "w"
    return home, run_cli("init", "--home", str(home), check=True)


@pytest.mark.slow
def test_init_prints_the_admin_token_once(initialised):
    home, first = initialised
    assert "myd_" in first.stdout and "Admin token" in first.stdout
    second = run_cli("init", "--home", str(home), check=True)
    assert "myd_" not in second.stdout and "Already initialised" in second.stdout
    data = json.loads(run_cli("init", "--json", home=home, check=True).stdout)
    assert data["schema"] == "modelyard.init/1" and data["token"] is None and data["home"] == str(home)


@pytest.mark.slow
def test_jobs_in_process_with_json_schemas(initialised):
    home, _ = initialised
    job = json.loads(run_cli("jobs", "submit", "system.sleep", "--set", "seconds=0.1", "--json",
                             home=home, check=True).stdout)
    assert job["schema"] == "modelyard.job/1" and job["spec"]["seconds"] == 0.1
    shown = json.loads(run_cli("jobs", "show", job["id"], "--json", home=home, check=True).stdout)
    assert shown["id"] == job["id"]
    kinds = json.loads(run_cli("jobs", "kinds", "--json", home=home, check=True).stdout)
    assert kinds["schema"] == "modelyard.job-kinds/1"
    tokens = json.loads(run_cli("tokens", "list", "--json", home=home, check=True).stdout)
    assert tokens["schema"] == "modelyard.token-list/1" and tokens["items"][0]["role"] == "admin"
    version = json.loads(run_cli("version", "--json", check=True).stdout)
    assert version["schema"] == "modelyard.version/1"
    run_cli("worker", "--until-idle", home=home, check=True)
    waited = run_cli("jobs", "wait", job["id"], home=home, check=True)
    assert "succeeded" in waited.stdout
    assert "slept 0.1s" in run_cli("jobs", "logs", job["id"], home=home, check=True).stdout


def _one_line_error(proc, code, text):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_errors_are_one_line(tmp_path, initialised):
    home, _ = initialised
    _one_line_error(run_cli("jobs", "submit", "nope", home=home), 2, "unknown job kind 'nope'; known kinds:")
    _one_line_error(run_cli("jobs", "submit", "system.sleep", "--set", "seconds=x", home=home), 2, "spec.seconds")
    _one_line_error(run_cli("jobs", "show", "job_missing", home=home), 1, "job job_missing not found")
    _one_line_error(run_cli("jobs", "submit", "system.sleep", "--set", "oops", home=home), 2, "expected key=value")
    _one_line_error(run_cli("server", "--home", str(tmp_path / "absent"), "--port", "0"), 1, "no workspace at")
    _one_line_error(run_cli("server", "--port", "70000", home=home), 2, "--port must be between")


@pytest.mark.slow
def test_reading_a_missing_workspace_says_where_it_looked_and_creates_nothing(tmp_path):
    absent = tmp_path / "absent"
    for command in (["models", "list"], ["jobs", "list"], ["data", "show", "d"], ["services", "list"]):
        _one_line_error(run_cli(*command, "--home", str(absent)), 1, f"no workspace at {absent} (--home")
    assert not absent.exists()
    # no --home, no MODELYARD_HOME: the default under the user's home folder, never created by a read
    user_home = tmp_path / "user"
    user_home.mkdir()
    proc = run_cli("runs", "list", HOME=str(user_home))
    _one_line_error(proc, 1, f"no workspace at {user_home / '.modelyard'} (the default")
    assert "modelyard init" in proc.stderr and not (user_home / ".modelyard").exists()


@pytest.mark.slow
def test_corrupt_database_is_one_clear_startup_error(tmp_path):
    home = tmp_path / "w"
    home.mkdir()
    (home / "modelyard.db").write_bytes(os.urandom(4096))
    for args in (("init",), ("jobs", "list"), ("worker", "--until-idle"), ("server", "--port", "0")):
        _one_line_error(run_cli(*args, home=home), 1, "corrupt or not a SQLite database")


def test_debug_shows_the_traceback(initialised):
    proc = run_cli("--debug", "jobs", "show", "job_missing", home=initialised[0])
    assert proc.returncode != 0 and "Traceback" in proc.stderr


@pytest.mark.slow
def test_blobs_put_and_get_round_trip(tmp_path):
    home = tmp_path / "w"
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(300_000))
    stored = json.loads(run_cli("blobs", "put", str(source), "--json", home=home, check=True).stdout)["items"][0]
    assert stored["digest"].startswith("sha256:") and stored["size"] == 300_000
    run_cli("blobs", "get", stored["digest"], "-o", str(tmp_path / "out" / "copy.bin"), home=home, check=True)
    assert (tmp_path / "out" / "copy.bin").read_bytes() == source.read_bytes()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["copy.bin"], "no temporary file is left behind"


@pytest.mark.slow  # > 2.5 s (subprocesses or jobs): out of the inner loop, in make test
def test_jobs_kinds_shows_each_kinds_spec_fields_without_json(initialised):
    home, _ = initialised  # initialised: a read-only command never creates the workspace
    listing = run_cli("jobs", "kinds", home=home, check=True).stdout
    evaluate = next(line for line in listing.splitlines() if line.strip().startswith("evaluate "))
    assert "model*, dataset*, split" in evaluate
    detail = run_cli("jobs", "kinds", "automl.train", home=home, check=True).stdout
    assert "time_budget_s" in detail and "60.0" in detail and "required" in detail
    assert run_cli("jobs", "kinds", "nope", home=home).returncode == 1
