"""Replica start-up choices that are not visible over HTTP."""

from modelyard.deploy.replica import _intra_op_threads


def test_one_replica_leaves_onnxruntime_its_own_thread_default_and_several_share_the_cores():
    import psutil

    cores = psutil.cpu_count(logical=False) or 1
    assert _intra_op_threads(1) is None  # ORT's default pins its threads; an explicit count does not
    assert _intra_op_threads(2) == max(1, cores // 2)
    assert _intra_op_threads(64) == 1
