"""Benchmark: importing an image folder through a real ``modelyard server`` (upload file by file, then import).

Generates a folder of small PNGs in class folders (or takes ``--data DIR``), starts ``modelyard server`` on
127.0.0.1 in a fresh workspace, and imports the folder with the SDK exactly as ``modelyard data import DIR --url``
does: hash every file, ask the server which digests it lacks, upload those one request each, import the manifest.
Reports the seconds and MB/s of each phase, the server's peak RSS (psutil, sampled every 50 ms, the server process
and its children) and this client's peak RSS, and checks that a rerun uploads nothing (resume).

The anchor is the request-body limit: before this path existed, any folder above ``max_body_bytes`` (64 MiB) was
refused with 413, and the old route held the whole upload in memory.

Run: ``.venv/bin/python benchmarks/dataset_upload.py [--size-mb 200] [--image-kb 100] [--data DIR] [--keep]``
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def make_folder(root: Path, size_mb: float, image_kb: float, classes: int = 10) -> Path:
    """Random-noise PNGs (they do not compress, so the bytes on disk are what was asked) in class folders."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    side = max(8, int((image_kb * 1024 / 3) ** 0.5))
    count = max(classes, int(size_mb * 1024 / image_kb))
    for index in range(count):
        folder = root / f"class_{index % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:06d}.png", compress_level=1)
    return root


class RssSampler:
    """Peak resident memory of a process tree, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.05):
        import psutil

        self.process, self.interval, self.peak = psutil.Process(pid), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                tree = [self.process, *self.process.children(recursive=True)]
                total = 0
                for proc in tree:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        total += proc.memory_info().rss
                self.peak = max(self.peak, total)
            except psutil.NoSuchProcess:
                return
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def start_server(home: Path) -> tuple[subprocess.Popen, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    cli = [sys.executable, "-m", "modelyard.cli.main", "--home", str(home)]
    token = json.loads(subprocess.run([*cli, "init", "--json"], env=env, check=True, capture_output=True,
                                      text=True).stdout)["token"]
    log = open(home / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([*cli, "server", "--port", "0", "--no-worker"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    info = home / "server.json"
    deadline = time.monotonic() + 60
    while not info.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            sys.exit(f"the server did not start: {(home / 'server.log').read_text()[-2000:]}")
        time.sleep(0.1)
    import httpx

    url = json.loads(info.read_text())["url"]
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url, token
        except httpx.TransportError:
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="import this folder instead of generating one")
    parser.add_argument("--size-mb", type=float, default=200.0, help="size of the generated folder")
    parser.add_argument("--image-kb", type=float, default=100.0, help="size of each generated image")
    parser.add_argument("--threads", type=int, default=4, help="uploads in flight")
    parser.add_argument("--keep", action="store_true", help="keep the generated folder and the workspace")
    args = parser.parse_args()

    from modelyard.client import Client
    from modelyard.client.data import _folder_files

    scratch = Path(tempfile.mkdtemp(prefix="modelyard-bench-upload-"))
    server = None
    try:
        if args.data:
            folder = args.data.resolve()
        else:
            started = time.perf_counter()
            folder = make_folder(scratch / "images", args.size_mb, args.image_kb)
            print(f"generated {folder} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        files = _folder_files(folder)
        total_bytes = sum(p.stat().st_size for p in files.values())
        home = scratch / "home"
        home.mkdir()
        server, url, token = start_server(home)
        with RssSampler(server.pid) as sampler, Client(url=url, token=token, timeout=600) as client:
            idle_rss = sampler.process.memory_info().rss
            started = time.perf_counter()
            digests = client.blobs.put_files(files, threads=args.threads)
            uploaded = time.perf_counter()
            version = client.request("POST", "/api/v1/datasets/import-files", json={
                "name": "bench", "files": digests, "source_name": folder.name}).json()
            imported = time.perf_counter()
            resent: list[int] = []
            client.blobs.put_files(files, threads=args.threads, on_progress=lambda done, n, size: resent.append(n))
            resumed = time.perf_counter()
        mb = total_bytes / 1e6
        result = {
            "schema": "modelyard.bench-dataset-upload/1",
            "files": len(files),
            "mb": round(mb, 1),
            "images_imported": version["items"],
            "upload_s": round(uploaded - started, 2),
            "import_s": round(imported - uploaded, 2),
            "total_s": round(imported - started, 2),
            "mb_per_s": round(mb / (imported - started), 1),
            "files_per_s": round(len(files) / (imported - started), 1),
            "resume_check_s": round(resumed - imported, 2),
            "resume_uploaded_files": len(resent),
            "server_idle_rss_mb": round(idle_rss / 2**20, 1),
            "server_peak_rss_mb": round(sampler.peak / 2**20, 1),
            "client_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "threads": args.threads,
            "cpus": os.cpu_count(),
        }
        print(f"{result['files']} files, {result['mb']} MB: upload {result['upload_s']}s + import "
              f"{result['import_s']}s = {result['mb_per_s']} MB/s; server peak RSS {result['server_peak_rss_mb']} MB "
              f"(idle {result['server_idle_rss_mb']} MB); a rerun uploaded {len(resent)} files", file=sys.stderr)
        print(json.dumps(result))
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if args.keep:
            print(f"kept {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
