"""Top-level commands: ``init``, ``server``, ``worker``, ``version``."""

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


def _settings(**overrides):
    from modelyard.core.settings import Settings

    return Settings.load(OPTIONS.home, **overrides)


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
    sock = socket.socket(family, socket.SOCK_STREAM)
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


def _start_service_supervisor(workspace) -> None:
    """Services deployed before a restart come back with the platform: start their supervisor if any should run."""
    from modelyard.deploy.supervisor import ensure_running

    try:
        ensure_running(workspace.settings, workspace=workspace)
    except Exception as exc:  # noqa: BLE001 - the API must come up even when services cannot
        err_console.print(f"warning: cannot start the service supervisor: {exc}", highlight=False, soft_wrap=True)


def server(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one (written to <home>/server.json).")] = 8765,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Do not start a job worker.")] = False,
    workers: Annotated[int | None, typer.Option(help="Jobs the worker runs at once (default: cores).")] = None,
) -> None:
    """Serve the REST API (and run a job worker beside it unless --no-worker)."""
    import uvicorn

    from modelyard.server.app import create_app
    from modelyard.store.workspace import Workspace

    if not 0 <= port <= 65535:
        from modelyard.core.errors import InvalidInput

        raise InvalidInput(f"--port must be between 0 and 65535, not {port}")
    settings = _settings(workers=workers)
    workspace = Workspace.open(settings, create=False)
    sock = _free_socket(host, port)
    bound_port = sock.getsockname()[1]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{bound_port}"
    worker_proc = None
    if not no_worker:
        cmd = [sys.executable, "-m", "modelyard.cli.main", "--home", str(settings.home), "worker"]
        if workers:
            cmd += ["--concurrency", str(workers)]
        from modelyard.jobs.executor import exit_with_parent

        # the worker stops (gracefully, SIGTERM) even when the server dies with kill -9
        worker_proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=exit_with_parent)  # noqa: PLW1509
    info_path = settings.home / SERVER_FILE
    _write_atomic(info_path, json.dumps({"url": url, "pid": os.getpid(),
                                         "worker_pid": worker_proc.pid if worker_proc else None}))
    err_console.print(f"Modelyard {url} (docs {url}/docs), workspace {settings.home}"
                      f"{'' if no_worker else ', worker pid ' + str(worker_proc.pid)}", soft_wrap=True, highlight=False)
    _start_service_supervisor(workspace)
    config = uvicorn.Config(create_app(workspace), log_level="warning", access_log=False, lifespan="off")
    # uvicorn re-raises the signal that stopped it once it has restored the previous handlers; make those
    # handlers no-ops so the clean-up below runs and the exit code is 0 after a SIGTERM/SIGINT.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if worker_proc is not None and worker_proc.poll() is None:
            worker_proc.send_signal(signal.SIGTERM)
            try:
                worker_proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker_proc.kill()
                worker_proc.wait()
        info_path.unlink(missing_ok=True)
        sock.close()
        workspace.close()
        err_console.print("Modelyard server stopped")


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


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("server")(server)
    app.command("worker")(worker)
    app.command("version")(version)
