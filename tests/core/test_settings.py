import pytest

from modelyard.core.errors import WorkspaceError
from modelyard.core.settings import Settings


def test_precedence_file_then_env_then_arguments(tmp_path, monkeypatch):
    (tmp_path / "config.toml").write_text("workers = 3\nmax_body_bytes = 2048\n")
    assert (Settings.load(tmp_path).workers, Settings.load(tmp_path).max_body_bytes) == (3, 2048)
    monkeypatch.setenv("MODELYARD_WORKERS", "5")
    assert Settings.load(tmp_path).workers == 5
    assert Settings.load(tmp_path, workers=7).workers == 7
    assert Settings.load(tmp_path).database_url == f"sqlite:///{tmp_path.resolve() / 'modelyard.db'}"


def test_home_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "elsewhere"))
    assert Settings.load().home == (tmp_path / "elsewhere").resolve()


@pytest.mark.parametrize("text,message", [
    ("workerz = 3", "unknown setting"),
    ("workers = 'many'", "not a valid int"),
    ("workers = 0", "at least 1"),
    ("max_body_bytes = 10", "at least 1024"),
    ("this is not toml", "cannot read"),
])
def test_bad_config_is_one_clear_error(tmp_path, text, message):
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(WorkspaceError, match=message):
        Settings.load(tmp_path)
