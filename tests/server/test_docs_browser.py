"""The interactive API docs render in a real browser with no network but 127.0.0.1 (no CDN assets)."""

import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_swagger_ui_renders_offline_in_chromium(live_server, tmp_path):
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
         # every host but the server's own resolves nowhere: a CDN reference could not load
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
         "--virtual-time-budget=15000", "--dump-dom", f"{live_server.url}/docs"],
        capture_output=True, text=True, timeout=120,
    )
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'class="swagger-ui' in dom, "Swagger UI did not render"
    assert "Modelyard API" in dom
    for path in ("/api/v1/jobs", "/api/v1/tokens", "/healthz"):
        assert path in dom, f"operation {path} missing from the rendered docs"
