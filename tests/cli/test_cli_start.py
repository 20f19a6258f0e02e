"""What a CLI process pays before its command runs: the tests start ``modelyard`` as a process well over a hundred
times and a user starts it all day, so it imports and builds only what the command needs. Checked on
``sys.modules`` (deterministic), never on the clock."""

import json
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from modelyard.cli.main import NOUNS, SHORTCUTS, build_app

# never needed to parse a command line or print help; an HTTP command needs only httpx of these
HEAVY = ("torch", "numpy", "onnx", "openvino", "pandas", "fastapi", "starlette", "sqlalchemy", "alembic", "jinja2",
         "modelyard.server", "modelyard.store", "modelyard.data", "modelyard.registry", "modelyard.deploy",
         "modelyard.jobs")

PROBE = r"""
import json, sys
found = {}

def note(step):
    found[step] = sorted(name for name in sys.modules if name.split(".")[0] in ("modelyard", "httpx", *HEAVY_TOPS))

import modelyard.cli.main as cli
note("import")
cli.main(["jobs", "--help"])
note("jobs --help")
found["rc"] = cli.main(["--url", URL, "--token", "myd_x", "jobs", "list"])
note("--url jobs list")
cli.main(["--help"])
note("--help")
with open(OUT, "w") as handle:
    json.dump(found, handle)
"""


def _refused_url() -> str:
    # a port nothing listens on: the client is built, its first request is refused at once
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def test_a_cli_process_imports_only_what_its_command_needs(tmp_path):
    out = tmp_path / "modules.json"
    tops = sorted({h.split(".")[0] for h in HEAVY} - {"modelyard"})
    code = f"HEAVY_TOPS = {tops!r}\nURL = {_refused_url()!r}\nOUT = {str(out)!r}\n" + PROBE
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and out.exists(), proc.stderr[-2000:]
    found = json.loads(out.read_text())
    nouns = {m for m in found["import"] if m.startswith("modelyard.cli.")} - {"modelyard.cli._common",
                                                                                "modelyard.cli.main"}
    assert not nouns, f"importing the CLI built command modules it may not run: {sorted(nouns)}"
    ran_jobs = {m for m in found["jobs --help"] if m.startswith("modelyard.cli.")}
    assert ran_jobs == {"modelyard.cli._common", "modelyard.cli.main", "modelyard.cli.jobs"}, sorted(ran_jobs)
    assert found["rc"] == 1 and "cannot reach the Modelyard server" in proc.stderr, proc.stderr[-2000:]
    assert "httpx" in found["--url jobs list"] and "modelyard.client" in found["--url jobs list"]
    for step in ("import", "jobs --help", "--url jobs list", "--help"):
        assert not _heavy(found[step]), f"{step}: imported {_heavy(found[step])}"
    assert "modelyard.cli.edge" in found["--help"], "the top-level help lists the whole tree"


def test_an_in_process_command_opens_a_current_workspace_without_alembic_or_the_console(tmp_path, monkeypatch):
    from modelyard.client import Client
    from modelyard.server.console import PAGES

    with Client(home=tmp_path / "w") as client:  # creates and migrates the workspace (Alembic's job)
        client.jobs.submit("system.sleep", {"seconds": 0})
    # from here on an import of Alembic or of a console page fails: the next command must need neither
    for name in ("alembic", *(f"modelyard.server.console.{page}" for page in PAGES)):
        monkeypatch.setitem(sys.modules, name, None)
    with Client(home=tmp_path / "w") as client:
        assert [job["kind"] for job in client.jobs.list()["items"]] == ["system.sleep"]


@pytest.fixture(scope="module")
def whole_tree():
    return build_app()


@pytest.mark.parametrize("command", [*NOUNS, *SHORTCUTS])
def test_a_command_alone_helps_as_in_the_whole_tree(command, whole_tree):
    runner = CliRunner()
    alone = runner.invoke(build_app(command), [command, "--help"], prog_name="modelyard", env={"COLUMNS": "120"})
    whole = runner.invoke(whole_tree, [command, "--help"], prog_name="modelyard", env={"COLUMNS": "120"})
    assert alone.exit_code == whole.exit_code == 0, (alone.output, whole.output)
    assert alone.output == whole.output and f"Usage: modelyard {command}" in alone.output
