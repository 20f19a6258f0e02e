"""``modelyard system init | server | worker | doctor | migrate-store | version`` (most also a top-level shortcut:
``modelyard init``...)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._common import OPTIONS, console, err_console, print_json

SERVER_FILE = "server.json"

app = typer.Typer()


def _settings(**overrides):
    from modelyard.core.settings import Settings

    return Settings.load(OPTIONS.home, **overrides)


@app.command("init")
def init(as_json: Annotated[bool, typer.Option("--json", help="Machine output.")] = False) -> None:
    """Create the workspace (database, blob store) and print the first admin token, once."""
    from modelyard.store.db import describe
    from modelyard.store.tokens import TokenStore
    from modelyard.store.workspace import Workspace

    settings = _settings()
    workspace = Workspace.open(settings, create=True)
    try:
        tokens = TokenStore(workspace.engine)
        secret = None
        if tokens.count() == 0:
            _, secret = tokens.create("admin", "admin", created_by="modelyard init")
    finally:
        workspace.close()
    result = {"schema": "modelyard.init/1", "home": str(settings.home), "database": describe(settings.database_url),
              "token": secret, "created": secret is not None}
    if as_json:
        print_json(result)
        return
    console.print(f"Workspace ready at [bold]{settings.home}[/] (database {result['database']})")
    if secret:
        console.print("Admin token (shown once, keep it safe):")
        console.print(secret, highlight=False, soft_wrap=True)
    else:
        console.print("Already initialised: tokens exist. Create more with 'modelyard tokens create --role R'.")


def _free_socket(host: str, port: int) -> socket.socket:
    from modelyard.core.errors import InvalidInput

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # NOTE: asyncio sets TCP_NODELAY on accepted connections only when the listening socket says IPPROTO_TCP;
    # without it every reused connection waits for Nagle + delayed ACK (~40 ms a call)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    return sock


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class WorkerKeeper:
    """The server's job worker: a child process, restarted when it dies unexpectedly (at most 5 times a minute),
    stopped with SIGTERM when the server stops. It also stops (SIGTERM) if the server is killed with -9."""

    CHECK_S = 2.0

    def __init__(self, home: Path, concurrency: int | None):
        # -P: `python -m` would otherwise put the cwd first on sys.path; the worker runs in the workspace's home
        self.cmd = [sys.executable, "-P", "-m", "modelyard.cli.main", "--home", str(home), "worker"]
        self.home = home
        if concurrency:
            self.cmd += ["--concurrency", str(concurrency)]
        self.proc: subprocess.Popen | None = None
        self.on_restart = None
        self._stopping = False
        self._restarts: list[float] = []

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _spawn(self) -> None:
        from modelyard.core.lifetime import die_with_parent

        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, cwd=self.home,
                                     env={**os.environ, "PYTHONSAFEPATH": "1"},
                                     preexec_fn=die_with_parent(signal.SIGTERM))  # noqa: PLW1509

    def start(self) -> None:
        import threading

        self._spawn()
        # the watchdog thread also owns every respawn: the parent-death signal follows the thread that forked
        threading.Thread(target=self._watch, name="worker-keeper", daemon=True).start()

    def _watch(self) -> None:
        import time

        while not self._stopping:
            time.sleep(self.CHECK_S)
            if self._stopping or self.proc is None or self.proc.poll() is None:
                continue
            now = time.monotonic()
            self._restarts = [t for t in self._restarts if now - t < 60] + [now]
            if len(self._restarts) > 5:
                err_console.print(f"error: the job worker keeps dying (exit {self.proc.returncode}); not restarting it",
                                  highlight=False, soft_wrap=True)
                return
            err_console.print(f"warning: the job worker exited ({self.proc.returncode}); restarting it",
                              highlight=False, soft_wrap=True)
            self._spawn()
            if self.on_restart:
                self.on_restart()

    def stop(self) -> None:
        self._stopping = True
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _start_service_supervisor(workspace) -> None:
    """Services deployed before a restart come back with the platform: start their supervisor if any should run."""
    from modelyard.deploy.supervisor import ensure_running

    try:
        ensure_running(workspace.settings, workspace=workspace)
    except Exception as exc:  # noqa: BLE001 - the API must come up even when services cannot
        err_console.print(f"warning: cannot start the service supervisor: {exc}", highlight=False, soft_wrap=True)


def _stop_service_supervisor(home: Path) -> None:
    """Stop the supervisor (it stops its replicas, in-flight requests finish). Services stay 'running' in the
    database, so the next server brings them back; 'services stop' is what keeps one down."""
    from modelyard.deploy import supervisor

    if not supervisor.is_running(home):
        return
    if supervisor.stop(home):
        err_console.print("service supervisor and replicas stopped (they come back with the next server)",
                          highlight=False, soft_wrap=True)
    else:
        err_console.print("warning: the service supervisor did not stop in time", highlight=False, soft_wrap=True)


@app.command("server")
def server(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one (written to <home>/server.json).")] = 8765,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Do not start a job worker.")] = False,
    workers: Annotated[int | None, typer.Option(help="Jobs the worker runs at once (default: cores).")] = None,
    keep_services: Annotated[bool, typer.Option(
        "--keep-services", help="On shutdown, leave the service supervisor and its replicas running (default: "
                                "stop them; they come back with the next 'modelyard server').")] = False,
) -> None:
    """Serve the REST API (and run a job worker beside it unless --no-worker). Ctrl-C or SIGTERM stops the server,
    its worker, and the service supervisor with every replica (unless --keep-services)."""
    import uvicorn

    from modelyard.server.app import close_app, create_app
    from modelyard.store.workspace import Workspace

    if not 0 <= port <= 65535:
        from modelyard.core.errors import InvalidInput

        raise InvalidInput(f"--port must be between 0 and 65535, not {port}")
    settings = _settings(workers=workers)
    workspace = Workspace.open(settings, create=False)
    sock = _free_socket(host, port)
    bound_port = sock.getsockname()[1]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{bound_port}"
    keeper = None if no_worker else WorkerKeeper(settings.home, workers)
    info_path = settings.home / SERVER_FILE

    def write_info() -> None:
        _write_atomic(info_path, json.dumps({"url": url, "pid": os.getpid(),
                                             "worker_pid": keeper.pid if keeper else None}))

    if keeper is not None:
        keeper.on_restart = write_info
        keeper.start()
    write_info()
    err_console.print(f"Modelyard {url} (console {url}/, API docs {url}/docs), workspace {settings.home}"
                      f"{'' if keeper is None else ', worker pid ' + str(keeper.pid)}", soft_wrap=True, highlight=False)
    _start_service_supervisor(workspace)
    app = create_app(workspace)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    # uvicorn re-raises the signal that stopped it once it has restored the previous handlers; make those
    # handlers no-ops so the clean-up below runs and the exit code is 0 after a SIGTERM/SIGINT.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if keeper is not None:
            keeper.stop()
        if not keep_services:
            _stop_service_supervisor(settings.home)
        info_path.unlink(missing_ok=True)
        sock.close()
        close_app(app)
        workspace.close()
        err_console.print("Modelyard server stopped")


@app.command("worker")
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Jobs at once (default: cores).")] = None,
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Exit when no job is queued or running.")] = False,
) -> None:
    """Run queued jobs in worker processes until stopped (SIGTERM/Ctrl-C)."""
    import logging

    from modelyard.jobs.worker import Worker
    from modelyard.store.workspace import Workspace

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if concurrency is not None and concurrency < 1:
        from modelyard.core.errors import InvalidInput

        raise InvalidInput("--concurrency must be at least 1")
    workspace = Workspace.open(_settings(), create=False)
    try:
        job_worker = Worker(workspace, concurrency=concurrency)
        recovered = job_worker.recover()
        if recovered:
            err_console.print(f"recovered {len(recovered)} job(s) left running by a dead worker")
        job_worker.run(until_idle=until_idle)
    finally:
        workspace.close()


@app.command("doctor")
def doctor(as_json: Annotated[bool, typer.Option("--json", help="Machine output.")] = False) -> None:
    """Check this configuration end to end: database reachable and migrated, blob store writable and read back, the
    executor (Ray) reachable with its resources. One line per problem; exit code 1 when there is any."""
    from modelyard.jobs.doctor import run_doctor

    report = run_doctor(_settings())
    if as_json:
        print_json(report.to_dict())
    else:
        for check in report.checks:
            if check.ok:
                console.print(f"ok  {check.name}: {check.detail}", highlight=False, soft_wrap=True)
        for check in report.problems:
            err_console.print(f"error: {check.name}: {check.detail}", highlight=False, soft_wrap=True, markup=False)
    if not report:
        raise typer.Exit(1)


@app.command("migrate-store")
def migrate_store(
    target_home: Annotated[Path, typer.Option("--target-home", help="The new workspace's folder; its config.toml "
                                              "names the target (db_url, blob_url, s3_*).")],
    blobs_only: Annotated[bool, typer.Option("--blobs-only", help="Copy only the blobs (resume an interrupted "
                                             "copy, or move blobs alone).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine output.")] = False,
) -> None:
    """Copy this workspace's metadata (every row) and blobs (verified) into another configuration, e.g. PostgreSQL +
    S3. The target database must be empty; stop the server and workers first."""
    from modelyard.core.settings import Settings
    from modelyard.store.transfer import transfer_workspace
    from modelyard.store.workspace import Workspace

    source = Workspace.open(_settings(), create=False)
    try:
        target = Workspace.open(Settings.load(target_home), create=True)
        try:
            log = (lambda _: None) if as_json else (lambda line: err_console.print(line, highlight=False,
                                                                                   markup=False))
            result = transfer_workspace(source, target, blobs_only=blobs_only, log=log)
        finally:
            target.close()
    finally:
        source.close()
    if as_json:
        print_json(result)
    else:
        console.print(f"copied {sum(result['rows'].values())} row(s) and {result['blobs_copied']} blob(s) to "
                      f"{target_home} (blobs in {result['target_blobs']})", highlight=False)


@app.command("version")
def version(as_json: Annotated[bool, typer.Option("--json", help="Machine output.")] = False) -> None:
    """Print the client's version, and the server's when --url is set."""
    from modelyard.core.version import __version__

    data = {"schema": "modelyard.version/1", "client": __version__, "server": None}
    if OPTIONS.url:
        from modelyard.cli._common import get_client

        with get_client() as client:
            data["server"] = client.version()["version"]
    if as_json:
        print_json(data)
    else:
        console.print(f"modelyard {__version__}" + (f" (server {data['server']})" if data["server"] else ""))
