"""The CLI against a real server sends files as blobs and brings outputs back (issue 21 #3): ``batch --url``
uploads its input and downloads the result to the client's ``--output``; ``jobs submit --file`` uploads what a
spec names. The job specs the server stores name no client path."""

import io
import json
import zipfile

import numpy as np
import pytest

from support import matmul_onnx, run_cli, start_server


def linear_onnx(path):
    return matmul_onnx(path, np.eye(2, dtype=np.float32) * 2.0)


@pytest.mark.slow
def test_batch_and_job_files_travel_as_blobs_to_a_real_server(tmp_path):
    server = start_server(tmp_path / "home")
    remote = ("--url", server.url, "--token", server.token)
    try:
        run_cli(*remote, "models", "register", str(linear_onnx(tmp_path / "m.onnx")), "--name", "mm", check=True)
        client_dir = tmp_path / "client"
        client_dir.mkdir()
        np.savez(client_dir / "in.npz", x=np.arange(12, dtype=np.float32).reshape(6, 2))
        out = run_cli(*remote, "batch", "mm@1", "--input", str(client_dir / "in.npz"), "--output",
                      str(client_dir / "out.npz"), "--chunk-size", "4", "--json", check=True, timeout=180)
        job = json.loads(out.stdout)
        assert job["status"] == "succeeded" and job["spec"]["input"] is None and job["spec"]["output"] is None
        assert set(job["spec"]["input_files"]) == {"in.npz"} and job["spec"]["output_format"] == "npz"
        with np.load(client_dir / "out.npz") as data:
            np.testing.assert_allclose(data["y"], np.arange(12).reshape(6, 2) * 2.0)
        assert job["result"]["output"] == str(client_dir / "out.npz")

        project = client_dir / "proj"
        project.mkdir()
        (project / "train.py").write_text("import torch\nx = torch.zeros(1).cuda()\n")
        out = run_cli(*remote, "jobs", "submit", "migrate.apply", "--set", "path=proj", "--set", "target=any",
                      "--file", f"proj={project}", "--wait", "--json", check=True, timeout=180)
        job = json.loads(out.stdout)
        assert job["status"] == "succeeded" and set(job["spec"]["files"]) == {"proj/train.py"}
        archive = client_dir / "migrated.zip"
        run_cli(*remote, "blobs", "get", job["result"]["download"]["digest"], "-o", str(archive), check=True)
        with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as bundle:
            assert ".cuda()" not in bundle.read("train.py").decode()
        assert (project / "train.py").read_text().endswith(".cuda()\n")  # the client's copy is untouched
    finally:
        server.stop()
