"""The shipped CUDA example migrates to ``any`` and trains on the CPU with the same loss curve as the original
script forced onto the CPU (fixed seed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelyard.migrate.code.apply import apply_migration

EXAMPLE = Path(__file__).parents[3] / "examples" / "gpu_project"


@pytest.fixture(scope="session")
def migrated_example(tmp_path_factory):
    out = tmp_path_factory.mktemp("example") / "gpu_project_any"
    result = apply_migration(EXAMPLE, "any", out=out)
    return out, result


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_migration_rewrites_everything_automatic(migrated_example):
    _, result = migrated_example
    assert result.before.count("auto") > 15
    assert result.after is not None and result.after.count("auto") == 0
    assert result.after.summary()["readiness_score"] >= result.before.summary()["readiness_score"]


@pytest.mark.slow
def test_migrated_training_matches_the_original_forced_onto_cpu(migrated_example, tmp_path):
    out, _ = migrated_example
    common = ["--steps", "4", "--workers", "0", "--batch-size", "16"]
    _run(EXAMPLE, "train.py", "--device", "cpu", *common, "--log-json", str(tmp_path / "original.json"))
    migrated = _run(out, "train.py", *common, "--log-json", str(tmp_path / "migrated.json"))
    original_losses = json.loads((tmp_path / "original.json").read_text(encoding="utf-8"))["losses"]
    migrated_losses = json.loads((tmp_path / "migrated.json").read_text(encoding="utf-8"))["losses"]
    assert len(original_losses) == 4
    assert migrated_losses == original_losses  # same ops on the same device: bit-identical
    assert "final loss" in migrated.stdout


@pytest.mark.slow
def test_migrated_benchmark_runs_where_the_original_needs_cuda(migrated_example):
    out, _ = migrated_example
    proc = _run(out, "benchmark.py", "--iters", "2", "--warmup", "1", "--batch-size", "4")
    assert "ms/iter" in proc.stdout
    original = subprocess.run([sys.executable, "benchmark.py", "--iters", "1", "--warmup", "0"], cwd=EXAMPLE,
                              capture_output=True, text=True, timeout=240,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    import torch

    if not torch.cuda.is_available():
        assert original.returncode != 0  # the original only runs on an NVIDIA GPU
