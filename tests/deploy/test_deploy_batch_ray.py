"""Batch inference split into shards over Ray actors (``executor = "ray"``, ``workers = 2``) on the real Ray head:
every row written exactly once, and a rerun after a partial run computes only the missing chunks."""

from __future__ import annotations

import numpy as np
import pytest
from deploy_models import deploy_models, linear_expected  # noqa: F401 - fixtures

from modelyard.core.jobkind import LocalJobContext
from modelyard.deploy.batch import BatchSpec, run_batch

ROWS = 230


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one Ray head per session: Ray tests share a worker
def test_two_ray_workers_write_each_row_once_and_resume(ray_head, deploy_models, linear_expected, tmp_path,
                                                        monkeypatch):
    import pyarrow.parquet as pq
    import ray

    from modelyard.client import Client

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(f'executor = "ray"\nray_address = "{ray_head.dashboard}"\n')
    with Client(home=home) as client:
        client.models.register(deploy_models / "linear.onnx", "linear")
    x = np.random.default_rng(0).normal(size=(ROWS, 4)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x, ids=np.arange(ROWS))
    monkeypatch.setenv("RAY_ADDRESS", ray_head.address)  # what a Ray Job's driver finds set
    spec = BatchSpec(model="linear@1", input=str(tmp_path / "in.npz"), output=str(tmp_path / "out.parquet"),
                     key="ids", chunk_size=20, workers=2)
    # a first run that stops (a crash) after 4 chunks leaves whole parts only
    ctx = LocalJobContext(home=home, on_progress=lambda f, m: (_ for _ in ()).throw(KeyboardInterrupt())
                          if f >= 4 / 12 else None)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_batch(spec, ctx)
        parts = sorted((tmp_path / "out.parquet.parts").glob("part-*.npz"))
        assert 1 <= len(parts) < 12
        result = run_batch(spec, LocalJobContext(home=home))
    finally:
        ray.shutdown()
    assert result["rows"] == ROWS and result["computed_this_run"] == ROWS - 20 * len(parts) + (
        20 * 12 - ROWS if any(p.name == "part-000011.npz" for p in parts) else 0)
    out = pq.read_table(tmp_path / "out.parquet")
    assert out["ids"].to_pylist() == list(range(ROWS))  # each row once, in order
    np.testing.assert_allclose(np.array(out["y"].to_pylist()), linear_expected(x), rtol=1e-5)
