"""``modelyard skills deploy NAME``: a market skill as a service with a model service's lifecycle (revisions under
the supervisor, the platform's predict URL and token rules, /readyz, /metrics, services list/show/stop)."""

import subprocess
import sys

import httpx
import pytest

from support import cli_env, run_cli


@pytest.fixture
def home(tmp_path):
    from modelyard.client import Client
    from modelyard.deploy import supervisor

    home = tmp_path / "home"
    with Client(home=home):  # the workspace made here, in a process that has imported it all already
        pass
    yield home
    supervisor.stop(home)


def test_skill_entry_refusals_and_digest(tmp_path):
    """No processes: the revision's skill entry, a traffic split refused on a skill service, a changed skill refused
    by its replica, a config the skill's schema refuses, an unknown skill."""
    from modelyard.core.errors import Conflict, InvalidInput, NotFound
    from modelyard.core.settings import Settings
    from modelyard.deploy.services import ServiceStore, replica_module
    from modelyard.edge.skill_replica import LoadedSkill
    from modelyard.edge.skill_services import SkillDeploySpec, deploy_skill
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(tmp_path / "home"))
    try:
        service = deploy_skill(workspace, "sentiment", SkillDeploySpec(service="senti", config={"threshold": 0.9}))
        entry = service.desired.traffic[0]
        assert entry["kind"] == "skill" and entry["ref"] == f"skill:sentiment@{entry['version']}"
        assert entry["digest"].startswith("sha256:") and service.desired.config == {"skill_config": {"threshold": 0.9}}
        assert replica_module(service.desired.traffic) == "modelyard.edge.skill_replica"
        with pytest.raises(InvalidInput, match="serves the skill sentiment"):
            ServiceStore(workspace).set_traffic("senti", {"mm@1": 100})
        with pytest.raises(InvalidInput, match="global config: threshold"):
            deploy_skill(workspace, "sentiment", SkillDeploySpec(config={"threshold": 5}))
        with pytest.raises(NotFound, match="no skill 'nope'"):
            deploy_skill(workspace, "nope", SkillDeploySpec())
        with pytest.raises(Conflict, match="changed since it was deployed"):
            LoadedSkill(workspace.home, {**entry, "digest": "sha256:" + "0" * 64}, {})
        assert LoadedSkill(workspace.home, entry, {"threshold": 0.9}).process(
            {"text": "I love this, it works great!"}, {})[0]["label"] == "neutral"  # the deployed config holds
    finally:
        workspace.close()


@pytest.mark.slow
def test_deploy_call_metrics_stop_a_skill_service(home):
    from modelyard.client import Client
    from modelyard.core.errors import InvalidInput

    # the bad name's process runs while the good one deploys: a CLI process costs seconds of imports
    bad = subprocess.Popen([sys.executable, "-m", "modelyard.cli.main", "skills", "deploy", "nope"], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(home))
    deployed = run_cli("skills", "deploy", "sentiment", "--service", "senti", "--config", '{"threshold": 0.5}',
                       home=home, check=True).stdout
    _, bad_stderr = bad.communicate(timeout=120)
    assert bad.returncode == 1 and bad_stderr.strip().count("\n") == 0 and "no skill 'nope'" in bad_stderr
    assert "service senti revision 1 ready: skill:sentiment@" in deployed and "token required" in deployed
    with Client(home=home) as client:
        answer = client.skills.call("senti", {"text": "I love this, it works great!"})
        assert answer["skill"] == "sentiment" and answer["events"][0]["label"] == "positive"
        weak = client.skills.call("senti", {"text": "It is fine, I guess."})
        assert weak["events"][0]["label"] == "neutral"  # threshold 0.5 from --config, not the default 0.05
        with pytest.raises(InvalidInput, match="config must be a JSON object"):
            client.skills.call("senti", {"text": "hi", "config": [1]})
        service = client.services.get("senti")
        assert service["traffic"][0]["kind"] == "skill" and service["healthy_replicas"] == 1
        with httpx.Client(base_url=service["url"]) as direct:  # the service's own URL: same token rules
            assert direct.get("/readyz").json()["status"] == "ready"
            refused = direct.post("/v1/skills/sentiment", json={"text": "hi"})
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
            assert direct.get("/metrics").status_code == 401
        missing = client._http.request("POST", "/api/v1/skills/nope/deploy", json={})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        from modelyard.cli.services import summarize_metrics

        counted = summarize_metrics(client.services.metrics("senti"))[service["traffic"][0]["ref"]]
        assert counted["requests"] == 4 and counted["errors"] == 2  # two answered; a bad config, a call without token
        listed = client.services.list()["items"]
        assert [(s["name"], s["traffic"][0]["ref"]) for s in listed] == [("senti", service["traffic"][0]["ref"])]
        assert client.services.stop("senti")["status"] == "stopped"
