"""``Client``: the SDK over the REST API. With ``url`` it speaks HTTP; without one it runs the same API in-process
on the local workspace, so the CLI, tests and scripts share one code path. ``run`` starts a tracked run
(``modelyard.run``) on a new ``Client`` unless given one.

Example::

    import modelyard
    client = modelyard.Client()                       # in-process on ~/.modelyard
    job = client.jobs.submit("blob.verify")
    job = client.jobs.wait(job["id"])
    print(job["status"], job["result"])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from modelyard.client._http import raise_for
from modelyard.client.active_learning import ActiveLearning
from modelyard.client.data import Datasets
from modelyard.client.edge import Edge
from modelyard.client.labeling import Labeling
from modelyard.client.monitoring import Monitoring
from modelyard.client.registry import Models
from modelyard.client.runs import ActiveRun, Runs
from modelyard.client.services import Services
from modelyard.client.skills import Skills
from modelyard.client.train import Automl, Ladder
from modelyard.core import errors
from modelyard.core.errors import ModelyardError, Unavailable

IN_PROCESS_URL = "http://modelyard.in-process"


class Client:
    """Args:
        url: server URL (``http://127.0.0.1:8765``); ``None`` runs the API in-process on ``home``.
        token: API token (``Authorization: Bearer``). In-process without a token you act as the workspace owner.
        home: workspace folder for in-process mode (default ``$MODELYARD_HOME`` or ``~/.modelyard``).
        timeout: seconds per HTTP request.
    """

    def __init__(self, url: str | None = None, token: str | None = None, home: str | Path | None = None,
                 timeout: float = 60.0):
        self.url = url.rstrip("/") if url else None
        self.token = token
        self._workspace = None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if self.url:
            self._http: httpx.Client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        else:
            from starlette.testclient import TestClient

            from modelyard.core.settings import Settings
            from modelyard.server.app import create_app
            from modelyard.server.auth import Principal
            from modelyard.store.workspace import Workspace

            self._workspace = Workspace.open(Settings.load(home))
            # the API alone: the SDK never asks for a console page, and leaving the console out saves its import
            app = create_app(self._workspace, local_principal=Principal("local", "admin"), console=False)
            self._http = TestClient(app, base_url=IN_PROCESS_URL, headers=headers, raise_server_exceptions=False)
        self.jobs = Jobs(self)
        self.tokens = Tokens(self)
        self.blobs = Blobs(self)
        self.data = Datasets(self)
        self.label = Labeling(self)
        self.runs = Runs(self)
        self.models = Models(self)
        self.services = Services(self)
        self.monitoring = Monitoring(self)
        self.skills = Skills(self)
        self.automl = Automl(self)
        self.edge = Edge(self)
        self.active_learning = ActiveLearning(self)
        self.ladder = Ladder(self)

    # -- plumbing -----------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach the Modelyard server at {self.url}: {exc}") from exc
        raise_for(response)
        return response

    def get_json(self, path: str, **kwargs) -> Any:
        return self.request("GET", path, **kwargs).json()

    def close(self) -> None:
        self._http.close()
        if self._workspace is not None:
            from modelyard.server.app import close_app

            close_app(self._http.app)
            self._workspace.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def in_process(self) -> bool:
        return self.url is None

    # -- evaluation ---------------------------------------------------------------------------------------------
    def evaluate(self, model: str, dataset: str, split: str = "all", *, timeout: float | None = None,
                 report: str | Path | None = None) -> dict:
        """Run the ``evaluate`` job (same spec keys: ``model``, ``dataset``, ``split``) and return its
        ``modelyard.evaluation/1`` result; ``report`` downloads the HTML report there.

        Example::

            result = client.evaluate("bc-model@1", "bc-test@1", report="report.html")
            print(result["metrics"]["accuracy"], result["warnings"])
        """
        result = self.jobs.result(self.jobs.run("evaluate", {"model": model, "dataset": dataset, "split": split},
                                                timeout=timeout))
        if report is not None:
            self.blobs.get(result["report"]["digest"], report)
        return result

    # -- system -------------------------------------------------------------------------------------------------
    def health(self) -> dict:
        return self.get_json("/healthz")

    def version(self) -> dict:
        return self.get_json("/api/v1/version")


class Jobs:
    def __init__(self, client: Client):
        self._c = client

    def submit(self, kind: str, spec: dict | None = None) -> dict:
        return self._c.request("POST", "/api/v1/jobs", json={"kind": kind, "spec": spec or {}}).json()

    def get(self, job_id: str) -> dict:
        return self._c.get_json(f"/api/v1/jobs/{job_id}")

    def list(self, status: str | None = None, kind: str | None = None, owner: str | None = None,
             limit: int = 50, before: str | None = None) -> dict:
        params = {k: v for k, v in
                  {"status": status, "kind": kind, "owner": owner, "limit": limit, "before": before}.items()
                  if v is not None}
        return self._c.get_json("/api/v1/jobs", params=params)

    def kinds(self) -> dict:
        return self._c.get_json("/api/v1/job-kinds")

    def cancel(self, job_id: str) -> dict:
        return self._c.request("POST", f"/api/v1/jobs/{job_id}/cancel").json()

    def logs(self, job_id: str, offset: int = 0) -> tuple[str, int, str]:
        """Log text from ``offset``, the next offset, and the job's status when read."""
        response = self._c.request("GET", f"/api/v1/jobs/{job_id}/logs", params={"offset": offset})
        return (response.content.decode("utf-8", errors="replace"), int(response.headers["X-Log-Offset"]),
                response.headers["X-Job-Status"])

    def follow_logs(self, job_id: str, poll_s: float = 0.5, timeout: float | None = None) -> Iterator[str]:
        """Yield log text as it is written, until the job ends (polling with offsets works on both transports)."""
        offset, deadline = 0, None if timeout is None else time.monotonic() + timeout
        while True:
            text, offset, status = self.logs(job_id, offset)
            if text:
                yield text
            elif status in ("succeeded", "failed", "cancelled"):
                return
            else:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} still {status} after {timeout}s")
                time.sleep(poll_s)

    def run(self, kind: str, spec: dict | None = None, timeout: float | None = None, poll_s: float = 0.3,
            on_update: Callable[[dict], None] | None = None) -> dict:
        """Submit a job and wait for it to end; returns its final state (look at ``status``). In-process there is
        no server worker, so a worker runs in this process until the queue is empty."""
        import threading

        job = self.submit(kind, spec)
        worker = thread = None
        if self._c.in_process:
            from modelyard.jobs.worker import Worker

            worker = Worker(self._c._workspace, concurrency=1)
            thread = threading.Thread(target=worker.run, kwargs={"until_idle": True, "handle_signals": False},
                                      daemon=True)
            thread.start()
        try:
            return self.wait(job["id"], timeout=timeout, poll_s=poll_s, on_update=on_update)
        except KeyboardInterrupt:
            self.cancel(job["id"])
            raise
        finally:
            if worker is not None:
                worker.stop_event.set()
                thread.join(timeout=60)

    def result(self, job: dict) -> dict:
        """A finished job's result; a job that did not succeed raises ``ModelyardError`` with its error."""
        if job["status"] != "succeeded":
            raise ModelyardError(f"{job['kind']} job {job['id']} {job['status']}: "
                                 f"{job['error'] or 'no error recorded'}", code=f"job_{job['status']}")
        return job["result"]

    def wait(self, job_id: str, timeout: float | None = None, poll_s: float = 0.3,
             on_update: Callable[[dict], None] | None = None) -> dict:
        """Poll until the job ends; returns its final state. ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if on_update is not None:
                on_update(job)
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s")
            time.sleep(poll_s)


class Tokens:
    def __init__(self, client: Client):
        self._c = client

    def create(self, name: str, role: str) -> dict:
        return self._c.request("POST", "/api/v1/tokens", json={"name": name, "role": role}).json()

    def list(self) -> dict:
        return self._c.get_json("/api/v1/tokens")

    def revoke(self, token_id: str) -> dict:
        return self._c.request("DELETE", f"/api/v1/tokens/{token_id}").json()


MISSING_BATCH = 5_000
CHUNKED_ABOVE = 16 * 1024 * 1024  # larger files go up in chunks of this size (or the server's limit, if lower)
CHUNK_RETRIES = 5  # failed chunks in a row before a chunked upload gives up (its session stays for a later resume)
CHUNK_RETRY_DELAY_S = 1.0  # grows linearly with each failure in a row


def _hash_file(path: Path) -> str:
    import hashlib

    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            hasher.update(chunk)
    return hasher.hexdigest()


class Blobs:
    def __init__(self, client: Client):
        self._c = client

    def put(self, path: str | Path, pin: bool = False, note: str = "") -> dict:
        """Upload one file (streamed); with ``pin`` also keep it through garbage collection (what ``blobs put``
        does). A file larger than ``CHUNKED_ABOVE`` bytes, or one the server refuses as too large for a single
        request, goes up in chunks through an upload session."""
        path = Path(path)
        if not path.is_file():
            raise errors.InvalidInput(f"no such file: {path}")
        if path.stat().st_size > CHUNKED_ABOVE and not self._c.in_process:
            stored = self.put_chunked(path)
        else:
            try:
                with open(path, "rb") as handle:
                    stored = self._c.request(
                        "POST", "/api/v1/blobs", content=handle, headers={"Content-Type": "application/octet-stream"}
                    ).json()
            except errors.PayloadTooLarge:  # in-process too: the same upload sessions as against a server
                stored = self.put_chunked(path)
        if pin:
            self.pin(stored["digest"], note=note)
        return stored

    def put_chunked(self, path: str | Path, chunk_bytes: int = CHUNKED_ABOVE) -> dict:
        """Upload a file of any size in chunks (each at most the server's body limit), then have the server
        check the whole file's digest and store it."""
        path = Path(path)
        digest = "sha256:" + _hash_file(path)
        session = self._c.request("POST", "/api/v1/blobs/uploads").json()
        url = f"/api/v1/blobs/uploads/{session['id']}"
        size = min(chunk_bytes, int(session["chunk_bytes"]))
        total = path.stat().st_size
        offset, failures = 0, 0
        with open(path, "rb") as handle:
            while offset < total:
                handle.seek(offset)
                chunk = handle.read(size)
                if not chunk:  # the file shrank while it went up: complete then refuses the digest
                    break
                try:
                    offset = self._c.request("PUT", url, params={"offset": offset}, content=chunk,
                                             headers={"Content-Type": "application/octet-stream"}).json()["offset"]
                    failures = 0
                except (Unavailable, errors.Conflict) as exc:
                    # the connection dropped (the chunk may or may not have arrived) or the offsets disagree:
                    # continue the same session where the server says it stands, rather than from 0
                    failures += 1
                    if failures > CHUNK_RETRIES:
                        raise type(exc)(f"{exc} (gave up after {CHUNK_RETRIES} retries; upload {session['id']} "
                                        f"holds {offset} of {total} bytes)") from exc
                    time.sleep(CHUNK_RETRY_DELAY_S * failures)
                    try:
                        offset = int(self._c.get_json(url)["offset"])
                    except Unavailable:
                        continue  # asked again after the next attempt fails
        return self._c.request("POST", f"{url}/complete", json={"digest": digest}).json()

    def missing(self, digests: list[str]) -> list[str]:
        """The digests the server does not hold yet (asked in batches)."""
        missing: list[str] = []
        for start in range(0, len(digests), MISSING_BATCH):
            batch = digests[start:start + MISSING_BATCH]
            missing += self._c.request("POST", "/api/v1/blobs/missing", json={"digests": batch}).json()["missing"]
        return missing

    def put_files(self, files: dict[str, str | Path], threads: int = 4,
                  on_progress: Callable[[int, int, int], None] | None = None) -> dict[str, str]:
        """Upload many files, one request each, skipping those the server already holds, so an interrupted
        upload resumes where it stopped. Memory stays flat: files are hashed and sent streamed, one chunk at a
        time.

        Args:
            files: name -> local path.
            threads: uploads in flight at once (small files are bound by round trips, not bandwidth).
            on_progress: ``callable(done_files, total_files, sent_bytes)`` after each file.

        Returns:
            name -> ``sha256:<hex>`` digest.
        """
        from concurrent.futures import ThreadPoolExecutor

        digests = {name: "sha256:" + _hash_file(Path(path)) for name, path in files.items()}
        wanted = set(self.missing(sorted(set(digests.values()))))
        todo: dict[str, Path] = {}
        for name, digest in digests.items():
            if digest in wanted and digest not in todo:
                todo[digest] = Path(files[name])
        total, done, sent = len(todo), 0, 0

        def upload(item: tuple[str, Path]) -> tuple[str, int]:
            digest, path = item
            if self._c.in_process and self._c.token is None:  # the owner's own store: no HTTP, no body limit
                stored = "sha256:" + self._c._workspace.blobs.put_file(path).digest
            else:
                stored = self.put(path)["digest"]
            if stored != digest:
                raise errors.IntegrityError(f"{path} changed while it was uploaded ({digest} -> {stored})")
            return digest, path.stat().st_size

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for _, size in pool.map(upload, todo.items()):
                done, sent = done + 1, sent + size
                if on_progress is not None:
                    on_progress(done, total, sent)
        return digests

    def pin(self, digest: str, note: str = "") -> dict:
        """Keep a stored blob through garbage collection."""
        return self._c.request("PUT", f"/api/v1/pins/{digest}", json={"note": note}).json()

    def unpin(self, digest: str) -> dict:
        return self._c.request("DELETE", f"/api/v1/pins/{digest}").json()

    def pins(self) -> dict:
        return self._c.get_json("/api/v1/pins")

    def gc(self, dry_run: bool = True, grace_s: float | None = None) -> dict:
        """Delete blobs nothing refers to (admin); by default only list them. Returns ``modelyard.blob-gc/1``."""
        return self._c.request("POST", "/api/v1/blobs/gc", json={"dry_run": dry_run, "grace_s": grace_s}).json()

    def get(self, digest: str, dest: str | Path) -> Path:
        """Download a verified blob to ``dest``: streamed to a temporary file beside it, fsynced, then renamed."""
        import os
        import tempfile

        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        response = self._c.request("GET", f"/api/v1/blobs/{digest}")
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by `with handle` below; name needed for cleanup
            dir=dest.parent, prefix=f".{dest.name[:100]}.", delete=False)
        try:
            with handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(handle.name, dest)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise
        return dest


def run(name: str, experiment: str = "default", params: dict | None = None, tags: dict | None = None,
        dataset: str | None = None, client=None, url: str | None = None, token: str | None = None,
        home: str | Path | None = None) -> ActiveRun:
    """Start a tracked run.

    Args:
        name: the run's name.
        experiment: groups runs for ``runs list --experiment`` (default ``default``).
        params: hyper-parameters to record now (more with ``log_params``).
        tags: free key/values.
        dataset: the dataset version trained on (``NAME@VERSION``), recorded as lineage.
        client: an existing ``modelyard.Client``; default: a new one from ``url``/``token``/``home`` or
            ``MODELYARD_URL``/``MODELYARD_TOKEN``/``MODELYARD_HOME`` (in-process when no URL), closed at the end.
    """
    import os

    own = client is None
    if own:
        client = Client(url=url or os.environ.get("MODELYARD_URL") or None,
                        token=token or os.environ.get("MODELYARD_TOKEN") or None, home=home)
    try:
        info = client.runs.create(name, experiment, params, tags, dataset)
    except BaseException:
        if own:
            client.close()
        raise
    return ActiveRun(client, info, own_client=own)
