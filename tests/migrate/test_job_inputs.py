"""Migrate job kinds run on uploaded files: the project, spec and data arrive as blobs named in ``files``, are
copied into the job's ``inputs`` folder, and outputs come back as blobs (issue 21 #0)."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modelyard.core.plugins import load_job_kind
from modelyard.core.settings import Settings
from modelyard.store.blobs import BlobStore

ZOO = {"entrypoint": "modelyard.runtime.zoo:tiny_mlp", "kwargs": {"in_features": 4, "out_features": 3},
       "inputs": [{"name": "x", "shape": ["batch", 4]}], "dims": {"batch": 2}}
CUDA_CODE = "import torch\n\ndef run(x):\n    return x.cuda()\n"


@dataclass
class Ctx:
    workdir: Path
    home: Path
    job_id: str = "job_test"
    lines: list = field(default_factory=list)

    def progress(self, fraction: float, message: str = "") -> None:
        pass

    def log(self, message: str) -> None:
        self.lines.append(message)

    def cancelled(self) -> bool:
        return False


@pytest.fixture
def ctx(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return Ctx(tmp_path / "job" / "work", home)


def _blobs(ctx) -> BlobStore:
    return BlobStore(Settings.load(ctx.home).blobs_dir)


def _put(ctx, data: bytes) -> str:
    return "sha256:" + _blobs(ctx).put_bytes(data).digest


def _run(kind_name: str, spec: dict, ctx) -> dict:
    kind = load_job_kind(kind_name)
    return kind.run(kind.validate_spec(spec), ctx)


def test_analyze_an_uploaded_archive(ctx):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("proj/train.py", CUDA_CODE)
    result = _run("migrate.analyze", {"path": "proj.zip", "files": {"proj.zip": _put(ctx, archive.getvalue())},
                                      "formats": ["json"]}, ctx)
    assert result["summary"]["files_scanned"] == 1 and result["summary"]["findings"] >= 1
    assert Path(result["reports"]["json"]).parent == ctx.workdir


def test_apply_to_uploaded_files_returns_the_migrated_copy_as_a_blob(ctx):
    result = _run("migrate.apply", {"path": "proj", "target": "any",
                                    "files": {"proj/train.py": _put(ctx, CUDA_CODE.encode())}}, ctx)
    download = result["download"]
    with zipfile.ZipFile(io.BytesIO(_blobs(ctx).read_bytes(download["digest"]))) as bundle:
        migrated = bundle.read("train.py").decode()
    assert ".cuda()" not in migrated and download["name"] == "migrated.zip"
    assert (ctx.workdir / "inputs" / "proj" / "train.py").read_text() == CUDA_CODE  # the upload is untouched


@pytest.mark.slow  # > 2.5 s (subprocesses or jobs): out of the inner loop, in make test
def test_convert_a_zoo_model_and_check_coverage_of_an_uploaded_onnx(ctx):
    converted = _run("migrate.convert", {"spec": ZOO, "to": "onnx"}, ctx)
    onnx_path = Path(converted["artifact"]["path"])
    assert onnx_path.parent == ctx.workdir
    onnx_digest = _put(ctx, onnx_path.read_bytes())
    spec = {**ZOO, "entrypoint": None, "kwargs": {}, "onnx": "model.onnx"}
    result = _run("migrate.coverage", {"spec": spec, "target": "onnxruntime:cpu",
                                       "files": {"model.onnx": onnx_digest}}, ctx)
    assert result["coverage"] == 1.0
