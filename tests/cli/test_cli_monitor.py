"""``modelyard monitor ...`` in-process on a workspace with a service row (nothing is started): settings, rules,
alerts and reports as people and machines read them; bad input is one line on stderr and a non-zero exit."""

import json

import pytest

from modelyard.cli.main import main
from support import matmul_onnx


@pytest.fixture
def home(tmp_path):
    from modelyard.core.settings import Settings
    from modelyard.deploy.services import DeploySpec, ServiceStore
    from modelyard.registry.versions import ModelRegistry
    from modelyard.store.workspace import Workspace

    home = tmp_path / "home"
    workspace = Workspace.open(Settings.load(home))
    digest = "sha256:" + workspace.blobs.put_file(matmul_onnx(tmp_path / "mm.onnx")).digest
    ModelRegistry(workspace).create_version("mm", {"model.onnx": digest}, "model.onnx", "onnx")
    ServiceStore(workspace).deploy(DeploySpec(model="mm@1", name="svc"))  # a row: no supervisor, no replica
    workspace.close()
    return home


def _run(capsys, home, *args):
    code = main(["--home", str(home), "monitor", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_enable_rules_alerts_and_report_from_the_command_line(home, capsys):
    code, out, _ = _run(capsys, home, "enable", "svc", "--rate", "0.5", "--window", "1h", "--json")
    status = json.loads(out)
    assert code == 0 and status["settings"]["enabled"] and status["settings"]["window"] == "1h"
    assert status["settings"]["sample_rate"] == 0.5 and status["schema"] == "modelyard.monitor-status/1"
    code, out, _ = _run(capsys, home, "add-rule", "svc", "drift", "--webhook", "http://127.0.0.1:9/h", "--json")
    rule = json.loads(out)
    assert code == 0 and rule["metric"] == "drift" and rule["webhook"] == "http://127.0.0.1:9/h"
    assert rule["id"] in _run(capsys, home, "rules", "svc")[1]
    code, out, _ = _run(capsys, home, "report", "svc")
    assert code == 0 and "no captured traffic yet" in out
    assert json.loads(_run(capsys, home, "alerts", "svc", "--json")[1])["items"] == []
    assert _run(capsys, home, "delete-rule", "svc", rule["id"])[0] == 0
    code, out, _ = _run(capsys, home, "disable", "svc")
    assert code == 0 and "capture off" in out


@pytest.mark.parametrize(("args", "message"), [
    (("enable", "svc", "--window", "5"), "at least 10"),
    (("enable", "svc", "--reference", "nonsense"), "reference"),
    (("add-rule", "svc", "vibes"), "metric"),
    (("report", "nosuch"), "service 'nosuch' not found"),
    (("delete-rule", "svc", "mrule_x"), "no alert rule"),
])
def test_bad_input_is_one_line_on_stderr(home, capsys, args, message):
    code, out, err = _run(capsys, home, *args)
    assert code != 0 and message in err and err.count("\n") == 1 and out == ""
