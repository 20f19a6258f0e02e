"""A supervisor asked to stop while it is still starting stops too: nothing is left running."""

import pytest

from support import kill_processes_naming

pytestmark = pytest.mark.slow  # starts a supervisor process


def test_stop_right_after_start_leaves_no_supervisor(tmp_path):
    from modelyard.core.settings import Settings
    from modelyard.deploy import supervisor
    from modelyard.store.workspace import Workspace

    settings = Settings.load(tmp_path / "home")
    Workspace.open(settings).close()
    assert supervisor.ensure_running(settings, only_if_services=False)
    stopped = supervisor.stop(settings.home)
    left = kill_processes_naming(settings.home)
    assert stopped and not left, left
