"""One replica process: ``python -m modelyard.deploy.replica --config FILE --index K --listen-fd N --control-fd M``.

Started by the supervisor with two inherited listening sockets: the service port (shared by every replica of the
service, so the kernel hands each new connection to whichever replica accepts first and a dead replica loses no
queued connection) and a private control port the supervisor health-checks. The replica loads and warms up every
version of its revision *before* it accepts anything; when a version cannot load it writes the reason to
``replica-<k>.error`` and exits with code 3, and the supervisor keeps the previous revision serving.

``--ray --config-env VAR --home DIR``: a replica Ray placed on one of its nodes (see
:mod:`modelyard.deploy.ray_replicas`): the config comes in a variable, the model from the blob store, and it
listens on one free port of its node (service and health alike), which it prints once it has loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import traceback
from pathlib import Path

EXIT_LOAD_FAILED = 3
TEXT_FORMATS = ("hf", "gguf", "peft")  # language models: served by deploy/textgen.py, not by a runtime backend


def _intra_op_threads(replicas: int) -> int | None:
    """ONNX Runtime intra-op threads per replica: its own default for one replica, else the physical cores shared.

    NOTE: left unset, ORT uses the physical cores and pins its threads; any explicit count, even the same one,
    turns pinning off, which measured a p95 at concurrency 1 2.4x its default's (5.0 vs 2.1 ms, 2 cores)."""
    if replicas <= 1:
        return None
    import psutil

    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return max(1, cores // replicas)


def missing_value_inputs(model_file: Path, signature) -> frozenset[str]:
    """The float inputs that take NaN (JSON ``null``) as a missing value: those of an AutoML table model, whose
    pipeline imputes them (its ONNX metadata carries ``modelyard.features``). Other models refuse NaN."""
    if model_file.suffix != ".onnx" or model_file.stat().st_size > 64 * 1024 * 1024:
        return frozenset()
    import onnx

    try:
        keys = {p.key for p in onnx.load(str(model_file), load_external_data=False).metadata_props}
    except Exception:  # noqa: BLE001 - the model loaded already; this is a hint, not a gate
        return frozenset()
    if "modelyard.features" not in keys:
        return frozenset()
    return frozenset(t.name for t in signature.inputs if t.dtype in ("float16", "float32", "float64"))


def load_versions(workspace, config: dict) -> list:
    """Materialize, load and warm up every version with traffic; raises on the first that cannot.

    With ``--backend auto`` a version falls back to onnxruntime:cpu when the machine's preferred backend cannot
    serve it (see :func:`modelyard.deploy.loading.load_served`); the replica log says why.
    """
    from modelyard.deploy.batching import DynamicBatcher
    from modelyard.deploy.loading import load_served
    from modelyard.deploy.model_server import LoadedVersion
    from modelyard.deploy.text import text_encoder
    from modelyard.registry.resolve import ResolvedModel, materialize, version_spec
    from modelyard.registry.versions import ModelRegistry
    from modelyard.runtime.spec import Artifact

    registry = ModelRegistry(workspace)
    serving = config["config"]
    threads = _intra_op_threads(int(config.get("replicas", 1)))
    loaded = []
    for entry in config["traffic"]:
        if entry["weight"] <= 0:
            continue
        version = registry.get_version_by_id(entry["version_id"])
        folder = materialize(registry, version)
        artifact = Artifact(version.format, folder / version.entry, version_spec(ResolvedModel(version, folder)))
        backend, runner = load_served(version, artifact, serving["backend"], threads,
                                      log=lambda message: print(message, flush=True))
        # a runner that may run from several threads gets `instances` of them; others run one call at a time
        parallel = serving.get("instances", 1) if runner.concurrent else 1
        batcher = DynamicBatcher(runner.infer, serving["max_batch"], serving["max_wait_ms"],
                                 batchable=version.signature.batchable, parallel=parallel)
        loaded.append(LoadedVersion(version.ref, version.id, entry["weight"], version.signature, batcher,
                                    backend.full_name, missing_value_inputs(folder / version.entry,
                                                                            version.signature),
                                    text_encoder(version.signature, folder)))
    if not loaded:
        raise RuntimeError("no version in the traffic split has a weight above 0")
    return loaded


def _runtime_dir(path: str, fallback) -> Path:
    """``path`` (the service's folder in the workspace's home) when this node can write there, else ``fallback``
    (a replica on a Ray node without the home: its metrics and access log stay on its node)."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        return Path(path)
    except OSError:
        Path(fallback).mkdir(parents=True, exist_ok=True)
        return Path(fallback)


def _listen_on_this_node() -> socket.socket:
    """A listening socket on a free port of the node's own address (what Ray calls the node), for a replica Ray
    placed: the supervisor forwards the service port to it."""
    import ray.util

    host = ray.util.get_node_ip_address()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listen = socket.socket(family, socket.SOCK_STREAM)
    listen.bind((host, 0))
    listen.listen(1024)
    return listen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelyard.deploy.replica")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="the replica config file the supervisor wrote")
    source.add_argument("--config-env", help="the variable holding the replica config as JSON (Ray placement)")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--listen-fd", type=int)
    parser.add_argument("--control-fd", type=int)
    parser.add_argument("--ray", action="store_true",
                        help="placed by Ray: listen on a free port of this node and print where (see ray_replicas)")
    parser.add_argument("--home", help="the workspace home on this node (default: the config's)")
    args = parser.parse_args(argv)
    if not args.ray and (args.listen_fd is None or args.control_fd is None):
        parser.error("--listen-fd and --control-fd are required unless --ray")
    config = json.loads(Path(args.config).read_text(encoding="utf-8") if args.config else os.environ[args.config_env])
    home = Path(args.home or config["home"])
    if args.ray:
        from modelyard.deploy.ray_replicas import LISTENING, LOAD_ERROR
        from modelyard.deploy.state import service_dir

        local = service_dir(home, config["service"])
        config["metrics_dir"] = str(_runtime_dir(config["metrics_dir"], local / "metrics"))
        config["access_log"] = str(_runtime_dir(str(Path(config["access_log"]).parent), local)
                                   / Path(config["access_log"]).name)
        config["run_dir"] = str(_runtime_dir(config["run_dir"], local / f"rev-{config['revision']}"))
        # before anything imports prometheus_client: it picks multiprocess mode from this at import
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = config["metrics_dir"]
    error_file = Path(config["run_dir"]) / f"replica-{args.index}.error"
    error_file.unlink(missing_ok=True)
    if args.ray:
        sockets = [_listen_on_this_node()]
    else:
        sockets = [socket.socket(fileno=args.listen_fd), socket.socket(fileno=args.control_fd)]
    try:
        from modelyard.core.settings import Settings
        from modelyard.store.workspace import Workspace

        # on Ray, like a job process: the platform migrated the database already
        workspace = Workspace.open(Settings.load(home), create=False, migrate=not args.ray)
        text_models = any(e.get("format") in TEXT_FORMATS for e in config["traffic"])
        if text_models:  # a language model and its adapters: the OpenAI-compatible API (deploy/textgen.py)
            from modelyard.deploy.textgen import load_text_server

            text_server = load_text_server(workspace, config)
        else:
            versions = load_versions(workspace, config)
    except Exception as exc:  # noqa: BLE001 - reported to the supervisor through the error file (Ray: the log)
        traceback.print_exc()
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        error_file.write_text(message, encoding="utf-8")
        if args.ray:
            print(f"{LOAD_ERROR} {message}", flush=True)
        return EXIT_LOAD_FAILED
    if args.ray:  # loaded and warm: the supervisor may send traffic from now on
        host, port = sockets[0].getsockname()[:2]
        print(f"{LISTENING} {host}:{port} pid {os.getpid()}", flush=True)
    import uvicorn

    from modelyard.deploy.model_server import ModelServer, TokenCheck, build_app
    from modelyard.deploy.state import internal_key

    # public or not: /metrics needs a credential. A replica on another node gets the platform's key in its config
    # (its home there has a key of its own); it sees a token revocation at once where the workspace's home is on
    # its node too, else when its token cache expires
    marker_home = Path(config["home"]) if Path(config["home"]).is_dir() else home
    tokens = TokenCheck(workspace.engine, config.get("internal_key") or internal_key(home), marker_home)
    if text_models:
        from modelyard.deploy.textgen import build_text_app

        app = build_text_app(text_server, tokens, config["public"])
        print(f"replica {args.index} of {config['service']} revision {config['revision']} serving "
              f"{', '.join(v.ref for v in text_server.versions)} (OpenAI-compatible, pid {os.getpid()})", flush=True)
        uv_config = uvicorn.Config(app, lifespan="off", access_log=False, log_level="warning",
                                   timeout_graceful_shutdown=10, timeout_keep_alive=30)
        uvicorn.Server(uv_config).run(sockets=sockets)
        workspace.close()
        return 0
    server = ModelServer(config["service"], config["revision"], args.index, versions, config["public"], tokens,
                         config["max_body_bytes"], Path(config["metrics_dir"]), Path(config["access_log"]))
    from modelyard.deploy.monitoring.capture import Capture
    from modelyard.deploy.state import service_dir

    server.capture = Capture(config["service"], f"replica-{args.index}", workspace.engine, workspace.blobs,
                             {v.ref: v.signature for v in versions},
                             service_dir(home, config["service"]) / "capture" / f"replica-{args.index}.json").start()
    print(f"replica {args.index} of {config['service']} revision {config['revision']} serving "
          f"{', '.join(v.ref for v in versions)} (pid {os.getpid()})", flush=True)
    uv_config = uvicorn.Config(build_app(server), lifespan="off", access_log=False, log_level="warning",
                               timeout_graceful_shutdown=10, timeout_keep_alive=30)
    uvicorn.Server(uv_config).run(sockets=sockets)
    server.capture.close()  # writes what is still queued
    workspace.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
