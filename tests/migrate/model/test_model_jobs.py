"""The migrate.convert / migrate.compare / migrate.coverage job kinds, run with the shipped LocalJobContext."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.core.jobkind import LocalJobContext
from modelyard.core.plugins import load_job_kind


@pytest.fixture
def ctx(tmp_path, model_cache):
    home = tmp_path / "home"
    (home / "cache").mkdir(parents=True)
    (home / "cache" / "passes").symlink_to(model_cache, target_is_directory=True)
    work = tmp_path / "work"
    work.mkdir()
    return LocalJobContext(home=home, workdir=work)


def test_job_kinds_are_registered():
    for name in ("migrate.convert", "migrate.compare", "migrate.coverage"):
        kind = load_job_kind(name)
        assert kind.name == name and kind.idempotent


def test_compare_and_convert_jobs(ctx, cnn_spec, cnn_onnx):
    spec_path = str(cnn_spec.base_dir / "cnn.yaml")
    compare = load_job_kind("migrate.compare")
    result = compare.run(compare.validate_spec({"spec": spec_path, "samples": 2, "layerwise": True}), ctx)
    assert result["schema"] == "modelyard.compare/1" and result["verdict"] == "pass"
    assert Path(result["report"]).is_file() and ctx.progress_events
    convert = load_job_kind("migrate.convert")
    result = convert.run(convert.validate_spec({"spec": spec_path, "to": "onnx-fp16"}), ctx)
    assert Path(result["artifact"]["path"]).parent == ctx.workdir
    coverage = load_job_kind("migrate.coverage")
    assert coverage.run(coverage.validate_spec({"spec": spec_path, "target": "npu"}), ctx)["coverage"] > 0.5


def test_job_spec_is_strict():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        load_job_kind("migrate.compare").validate_spec({"spec": "x.yaml", "sample": 3})
