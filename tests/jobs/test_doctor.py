"""``modelyard doctor``: a healthy configuration passes; each broken piece is one line naming what is wrong."""

from __future__ import annotations

import json

import pytest

from modelyard.cli.main import main
from modelyard.core.settings import Settings
from modelyard.jobs.doctor import run_doctor
from modelyard.store.workspace import Workspace


def test_a_fresh_local_workspace_is_healthy(tmp_path, capsys):
    Workspace.open(Settings.load(tmp_path / "home")).close()
    report = run_doctor(Settings.load(tmp_path / "home"))
    assert report, str(report)
    assert [c.name for c in report.checks] == ["database", "blobs", "executor"]
    assert main(["doctor", "--home", str(tmp_path / "home"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "modelyard.doctor/1" and data["ok"]


def test_each_problem_is_one_line_and_exit_1(tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir()
    # an uninitialised database, an S3 endpoint nobody listens on, a Ray dashboard nobody serves
    (home / "config.toml").write_text(
        'blob_url = "s3://bucket/p"\ns3_endpoint_url = "http://127.0.0.1:9"\n'
        's3_access_key_id = "k"\ns3_secret_access_key = "s"\n'
        'executor = "ray"\nray_address = "http://127.0.0.1:9"\n')
    assert main(["doctor", "--home", str(home)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3, err
    assert err[0].startswith("error: database:") and "run 'modelyard init'" in err[0]
    assert err[1].startswith("error: blobs:") and "127.0.0.1:9" in err[1]
    assert err[2].startswith("error: executor: Ray at http://127.0.0.1:9")


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one Ray head per session: Ray tests share a worker
def test_ray_and_s3_are_checked_for_real(ray_head, s3_server, tmp_path):
    settings = Settings.load(tmp_path / "home", executor="ray", ray_address=ray_head.dashboard,
                             **s3_server.settings_values())
    Workspace.open(settings).close()
    report = run_doctor(settings)
    assert report, str(report)
    executor = report.checks[2]
    assert "CPU 2" in executor.detail and ray_head.dashboard in executor.detail
    assert s3_server.endpoint in report.checks[1].detail
