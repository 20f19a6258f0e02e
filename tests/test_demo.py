"""The README's `make demo` runs scripts/demo.sh; run that script end to end."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_script_runs_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["OUT_DIR"] = str(tmp_path / "demo")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = proc.stdout
    assert "health without a token: 200" in out and "jobs without a token:   401" in out
    assert "web console: http://127.0.0.1:" in out
    assert "succeeded, 3 blobs verified" in out and "healthy=True" in out
    assert "readiness for any: " in out and "5 steps in" in out
    assert "PASS openvino:cpu vs torch:cpu" in out and "no divergence" in out
    assert "fp16 artifact vs torch:cpu under fp16 thresholds: pass" in out
    assert "verdict pass" in out and "report: " in out
    assert (tmp_path / "demo" / "migration" / "report" / "report.html").is_file()
    assert "answer 3 from gpu-project-classifier@1" in out and "unexpected input(s) ['nope']" in out
    assert "replicas 1/1 healthy" in out
    assert "AutoML winner bc-model@1" in out and (tmp_path / "demo" / "evaluation.html").is_file()
    assert "L0 smollm2@1: license apache-2.0" in out and "forgetting gate passed" in out
    assert "L2 smollm2-pyqa@1" in out and "chat completion from smollm2-pyqa@1: " in out
    assert "server stopped cleanly (exit 0)" in out
    assert not (tmp_path / "demo" / "home" / "server.json").exists()
