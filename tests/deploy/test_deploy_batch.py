"""Batch inference: tables, arrays and image folders in; Parquet/CSV/NPZ out with the key on every row; resumable
after a crash without duplicated or lost rows."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from deploy_models import deploy_models, linear_expected  # noqa: F401 - fixtures

from modelyard.core.jobkind import LocalJobContext
from modelyard.deploy.batch import BatchSpec, run_batch

ROWS = 230


def job_context(home: Path, crash_after: int | None = None) -> LocalJobContext:
    """A context for calling the kind directly; at the ``crash_after``-th progress report it raises like a dying
    process."""

    def crash(_fraction: float, _message: str) -> None:
        if len(ctx.progress_events) >= crash_after:
            raise KeyboardInterrupt("simulated crash")

    ctx = LocalJobContext(home=home, on_progress=crash if crash_after is not None else None)
    return ctx


@pytest.fixture(scope="module")
def batch_home(tmp_path_factory, deploy_models):
    from modelyard.client import Client

    home = tmp_path_factory.mktemp("batch") / "home"
    with Client(home=home) as client:
        client.models.register(deploy_models / "linear.onnx", "linear")
        client.models.register(deploy_models / "image.onnx", "image", preprocessing={"size": [8, 8], "scale": 1.0})
    return home


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    folder = tmp_path_factory.mktemp("batch-data")
    x = np.random.default_rng(0).normal(size=(ROWS, 4)).astype(np.float32)
    pacsv.write_csv(pa.table({"id": [f"row-{i}" for i in range(ROWS)], **{f"f{j}": x[:, j] for j in range(4)}}),
                    folder / "in.csv")
    np.savez(folder / "in.npz", x=x, ids=np.arange(1000, 1000 + ROWS))
    return folder, x


def test_csv_to_parquet_with_keys(batch_home, table, tmp_path, linear_expected):
    import pyarrow.parquet as pq

    folder, x = table
    spec = BatchSpec(model="linear@1", input=str(folder / "in.csv"), output=str(tmp_path / "out.parquet"), key="id",
                     chunk_size=50)
    result = run_batch(spec, job_context(batch_home))
    assert result["rows"] == ROWS and result["chunks"] == 5 and result["computed_this_run"] == ROWS
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column_names == ["id", "y"] and out["id"].to_pylist() == [f"row-{i}" for i in range(ROWS)]
    np.testing.assert_allclose(np.array(out["y"].to_pylist()), linear_expected(x), rtol=1e-5)
    assert not (tmp_path / "out.parquet.parts").exists()


def test_npz_to_csv_and_npz(batch_home, table, tmp_path, linear_expected):
    import pyarrow.csv as pacsv

    folder, x = table
    run_batch(BatchSpec(model="linear", input=str(folder / "in.npz"), output=str(tmp_path / "o.csv"), key="ids",
                        chunk_size=64), job_context(batch_home))
    csv = pacsv.read_csv(tmp_path / "o.csv")
    assert csv.column_names == ["ids", "y_0", "y_1", "y_2"] and csv["ids"].to_pylist()[0] == 1000
    run_batch(BatchSpec(model="linear@1", input=str(folder / "in.npz"), output=str(tmp_path / "o.npz")),
              job_context(batch_home))
    with np.load(tmp_path / "o.npz") as data:
        assert data["key"].tolist() == list(range(ROWS))
        np.testing.assert_allclose(data["y"], linear_expected(x), rtol=1e-5)


def test_image_folder(batch_home, tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for i in range(5):
        Image.fromarray(np.full((12, 12, 3), 10 * i, np.uint8)).save(images / f"img{i}.png")
    (images / "notes.txt").write_text("not an image")
    result = run_batch(BatchSpec(model="image@1", input=str(images), output=str(tmp_path / "o.npz"), chunk_size=2),
                       job_context(batch_home))
    assert result["rows"] == 5
    with np.load(tmp_path / "o.npz") as data:
        assert data["key"].tolist() == [f"img{i}.png" for i in range(5)]
        np.testing.assert_allclose(data["mean"][:, 0], [0, 10, 20, 30, 40])


def test_a_crashed_run_resumes_without_duplicates_or_losses(batch_home, table, tmp_path, linear_expected):
    import pyarrow.parquet as pq

    folder, x = table
    spec = BatchSpec(model="linear@1", input=str(folder / "in.csv"), output=str(tmp_path / "out.parquet"), key="id",
                     chunk_size=20)
    with pytest.raises(KeyboardInterrupt):
        run_batch(spec, job_context(batch_home, crash_after=4))
    parts = sorted((tmp_path / "out.parquet.parts").glob("part-*.npz"))
    assert len(parts) == 4 and not (tmp_path / "out.parquet").exists()
    ctx = job_context(batch_home)
    result = run_batch(spec, ctx)
    assert "resuming: 4 of 12 chunks already done" in ctx.lines
    assert result["computed_this_run"] == ROWS - 4 * 20
    out = pq.read_table(tmp_path / "out.parquet")
    assert out["id"].to_pylist() == [f"row-{i}" for i in range(ROWS)]
    np.testing.assert_allclose(np.array(out["y"].to_pylist()), linear_expected(x), rtol=1e-5)


def test_bad_batch_specs_are_clear(batch_home, table, tmp_path):
    from pydantic import ValidationError

    from modelyard.core.errors import InvalidInput, NotFound

    folder, _ = table
    with pytest.raises(ValidationError, match="absolute path"):
        BatchSpec(model="linear@1", input="in.csv", output=str(tmp_path / "o.parquet"))
    with pytest.raises(ValidationError, match="output must end in"):
        BatchSpec(model="linear@1", input=str(folder / "in.csv"), output=str(tmp_path / "o.xlsx"))
    with pytest.raises(InvalidInput, match="key column 'nope'"):
        run_batch(BatchSpec(model="linear@1", input=str(folder / "in.csv"), output=str(tmp_path / "o.npz"),
                            key="nope"), job_context(batch_home))
    with pytest.raises(InvalidInput, match="declares no image preprocessing"):
        run_batch(
            BatchSpec(model="linear@1", input=str(tmp_path), output=str(tmp_path / "o.npz")), job_context(batch_home)
        )
    with pytest.raises(NotFound):
        run_batch(BatchSpec(model="linear@9", input=str(folder / "in.csv"), output=str(tmp_path / "o.npz")),
                  job_context(batch_home))


@pytest.mark.slow
def test_kill_9_of_the_worker_mid_batch_then_a_new_worker_finishes_it(batch_home, table, tmp_path):
    """The real thing: a worker process runs the job, dies with kill -9 (its job process with it), and the next
    worker re-queues the idempotent job, which resumes from its finished chunks."""
    import pyarrow.parquet as pq

    from modelyard.client import Client

    folder, _ = table
    out = tmp_path / "out.parquet"
    with Client(home=batch_home) as client:
        job = client.jobs.submit("batch.predict", {"model": "linear@1", "input": str(folder / "in.csv"),
                                                   "output": str(out), "key": "id", "chunk_size": 10,
                                                   "max_rows_per_second": 120})
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
        cmd = [sys.executable, "-m", "modelyard.cli.main", "--home", str(batch_home), "worker", "--concurrency", "1"]
        worker = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        parts = out.with_name(out.name + ".parts")
        deadline = time.monotonic() + 60
        while len(list(parts.glob("part-*.npz"))) < 3:
            assert time.monotonic() < deadline and worker.poll() is None
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        assert client.jobs.get(job["id"])["status"] == "running"
        worker = subprocess.Popen([*cmd, "--until-idle"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            final = client.jobs.wait(job["id"], timeout=90)
        finally:
            worker.wait(timeout=60)
        assert final["status"] == "succeeded", final
        assert final["attempts"] == 2 and 0 < final["result"]["computed_this_run"] < ROWS
        log, _, _ = client.jobs.logs(job["id"])
        assert "re-queued" in log and "resuming:" in log
    ids = pq.read_table(out)["id"].to_pylist()
    assert ids == [f"row-{i}" for i in range(ROWS)]
