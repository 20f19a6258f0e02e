"""``modelyard services list | show | logs | scale | stop | start | rollback | traffic | predict | metrics |
delete``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._common import console, get_client, print_json

app = typer.Typer(no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine output.")]
STATUS_STYLE = {"ready": "green", "deploying": "cyan", "degraded": "yellow", "starting": "yellow",
                "unavailable": "red", "failed": "red", "stopped": "magenta"}


def _status(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _traffic(service: dict) -> str:
    return ", ".join(f"{t['ref']}={t['weight']:g}%" for t in service["traffic"]) or "-"


def _print_service(service: dict) -> None:
    from rich.table import Table

    console.print(f"[bold]{service['name']}[/] {_status(service['status'])}"
                  + (f" ({service['message']})" if service["message"] else ""), highlight=False)
    console.print(f"url {service['url'] or '-'}/v1/predict, {'public' if service['public'] else 'token required'}, "
                  f"revision {service['revision']} (live {service['live_revision'] or '-'}), "
                  f"traffic {_traffic(service)}",
                  highlight=False, soft_wrap=True)
    config = service["config"]
    console.print(f"backend {config['backend']}, max batch {config['max_batch']}, "
                  f"max wait {config['max_wait_ms']:g} ms, "
                  f"{config.get('instances', 1)} instance(s) per replica, "
                  f"replicas {service['healthy_replicas']}/{service['replicas']} healthy", highlight=False)
    if service["replica_states"]:
        table = Table("replica", "revision", "pid", "state", "runs on", "restarts", "last error", box=None)
        for r in service["replica_states"]:
            state = {"ready": "[green]healthy[/]", "unhealthy": "[red]unhealthy[/]",
                     "crashed": "[red]crashed[/]"}.get(r["state"], r["state"])
            runs_on = ", ".join(sorted(set((r.get("backends") or {}).values()))) or "-"
            table.add_row(str(r["index"]), str(r["revision"]), str(r["pid"] or "-"), state, runs_on,
                          str(r["restarts"]), (r["last_error"] or "")[:80])
        console.print(table)
    table = Table("revision", "status", "traffic", "created", "message", box=None)
    for rev in service["revisions"][:8]:
        table.add_row(str(rev["revision"]), rev["status"], ", ".join(f"{t['ref']}={t['weight']:g}%"
                                                                     for t in rev["traffic"]),
                      (rev["created_at"] or "")[:19], (rev["message"] or "")[:80])
    console.print(table)


@app.command("list")
def list_services(as_json: JsonOpt = False) -> None:
    """List services with status, traffic and healthy replicas."""
    from rich.table import Table

    with get_client(read_only=True) as client:
        data = client.services.list()
    if as_json:
        print_json(data)
        return
    table = Table("name", "status", "url", "traffic", "replicas", "revision", box=None)
    for s in data["items"]:
        table.add_row(s["name"], _status(s["status"]), s["url"] or "-", _traffic(s),
                      f"{s['healthy_replicas']}/{s['replicas']}", str(s["live_revision"] or "-"))
    console.print(table)


@app.command("show")
def show(name: str, as_json: JsonOpt = False) -> None:
    """Show a service: status, replicas (healthy/unhealthy), traffic and revisions."""
    with get_client(read_only=True) as client:
        service = client.services.get(name)
    if as_json:
        print_json(service)
    else:
        _print_service(service)


@app.command("logs")
def logs(
    name: str,
    source: Annotated[str, typer.Option(help="events (supervisor), access (one JSON line per request) or "
                                        "replica (replica output).")] = "events",
    replica: Annotated[int | None, typer.Option(help="Only this replica (source=replica).")] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines from the end.")] = 200,
) -> None:
    """Print a service's logs."""
    with get_client(read_only=True) as client:
        sys.stdout.write(client.services.logs(name, source, replica, lines))


def _done(service: dict, as_json: bool, what: str) -> None:
    if as_json:
        print_json(service)
    else:
        console.print(f"{service['name']}: {what}; {_status(service['status'])}, traffic {_traffic(service)}",
                      highlight=False)


@app.command("scale")
def scale(name: str, replicas: Annotated[int, typer.Argument(help="Replica processes.")],
          as_json: JsonOpt = False) -> None:
    """Change the number of replicas."""
    with get_client() as client:
        _done(client.services.scale(name, replicas), as_json, f"scaling to {replicas} replica(s)")


@app.command("stop")
def stop(
    name: Annotated[str | None, typer.Argument(help="The service (or --all).")] = None,
    all_services: Annotated[bool, typer.Option("--all", help="Stop every running service.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Stop a service, or all of them (replicas finish in-flight requests). Stopped services stay stopped across
    platform restarts until 'services start'."""
    from modelyard.core.errors import InvalidInput

    if (name is None) == (not all_services):
        raise InvalidInput("give a service name or --all (not both)")
    with get_client() as client:
        if name is not None:
            _done(client.services.stop(name), as_json, "stop requested")
            return
        stopped = [client.services.stop(s["name"]) for s in client.services.list()["items"] if s["state"] == "running"]
    if as_json:
        print_json({"schema": "modelyard.service-list/1", "items": stopped})
    else:
        console.print(f"stop requested for {len(stopped)} service(s)"
                      + (": " + ", ".join(s["name"] for s in stopped) if stopped else ""), highlight=False)


@app.command("start")
def start(
    name: str,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return at once instead of waiting until it "
                                          "serves.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the service to serve.")] = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """Start a stopped service again on its live revision; waits until every replica is ready (as deploy does)."""
    from modelyard.core.errors import ModelyardError

    with get_client() as client:
        try:
            service = client.services.start(name, wait=not no_wait, timeout=timeout)
        except TimeoutError as exc:
            raise ModelyardError(str(exc), code="timeout") from exc
    _done(service, as_json, "starting" if no_wait else "started")


@app.command("delete")
def delete(name: str, as_json: JsonOpt = False) -> None:
    """Delete a service; a running one is stopped first (its replicas finish in-flight requests)."""
    with get_client() as client:
        result = client.services.delete(name)
    if as_json:
        print_json(result)
    else:
        console.print(f"{'stopped and ' if result.get('stopped') else ''}deleted service {name}", highlight=False)


def _wait_call(call):
    from modelyard.core.errors import ModelyardError

    try:
        return call()
    except TimeoutError as exc:
        raise ModelyardError(str(exc), code="timeout") from exc


@app.command("rollback")
def rollback(
    name: str,
    revision: Annotated[int | None, typer.Option("--to", help="Revision to go back to (default: the one live "
                                                 "before the current).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Serve an earlier revision again (one command, waits until it serves)."""
    with get_client() as client:
        _done(_wait_call(lambda: client.services.rollback(name, revision)), as_json, "rolled back")


@app.command("traffic")
def traffic(
    name: str,
    split: Annotated[list[str], typer.Argument(help="NAME@VERSION=PERCENT ... (adding up to 100).")],
    as_json: JsonOpt = False,
) -> None:
    """Split traffic between versions, e.g. ``services traffic S m@1=90 m@2=10`` (sticky by request key)."""
    from modelyard.core.errors import InvalidInput

    weights = {}
    for item in split:
        ref, sep, value = item.rpartition("=")
        try:
            weights[ref] = float(value)
        except ValueError:
            raise InvalidInput(f"traffic {item!r}: expected NAME@VERSION=PERCENT") from None
        if not sep or not ref:
            raise InvalidInput(f"traffic {item!r}: expected NAME@VERSION=PERCENT")
    with get_client() as client:
        _done(_wait_call(lambda: client.services.traffic(name, weights)), as_json, "traffic split")


@app.command("predict")
def predict(
    name: str,
    data: Annotated[str | None, typer.Option("--data", "-d", help="JSON body text, e.g. '{\"inputs\": {\"x\": "
                                             "[[1, 2]]}}'.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="A .json body, .npy, .safetensors or a "
                                              "PNG/JPEG image.")] = None,
    input_name: Annotated[str | None, typer.Option("--input", help="Input a .npy file feeds.")] = None,
    key: Annotated[str | None, typer.Option(help="Sticky routing key (same key, same version).")] = None,
    threshold: Annotated[float | None, typer.Option(
        help="Detectors: the score a box needs (default: the model's).")] = None,
) -> None:
    """Send one request through the platform and print the JSON answer (a detector's: boxes in the image's own
    pixels)."""
    from modelyard.core.errors import InvalidInput

    if (data is None) == (file is None):
        raise InvalidInput("give exactly one of --data and --file")
    with get_client() as client:
        if file is not None:
            result = client.services.predict_file(name, file, input_name, key, threshold)
        else:
            try:
                body = json.loads(data)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"--data: not JSON: {exc.msg}") from None
            result = client.services.predict_body(name, json.dumps(body).encode(), "application/json", key,
                                                  threshold=threshold)
    print_json(result)


@app.command("metrics")
def metrics(
    name: str,
    raw: Annotated[bool, typer.Option("--raw", help="The Prometheus text as it is.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The service's metrics: requests, errors, latency and batch sizes per version."""
    with get_client(read_only=True) as client:
        text = client.services.metrics(name)
    if raw:
        sys.stdout.write(text)
        return
    summary = summarize_metrics(text)
    if as_json:
        print_json({"schema": "modelyard.service-metrics/1", "service": name, "versions": summary})
        return
    from rich.table import Table

    table = Table("version", "requests", "errors", "mean latency ms", "p95 latency ms", "mean batch", box=None)
    for ref, m in summary.items():
        table.add_row(ref, f"{m['requests']:.0f}", f"{m['errors']:.0f}", f"{m['latency_mean_ms']:.2f}",
                      f"{m['latency_p95_ms']:.2f}" if m["latency_p95_ms"] is not None else "-",
                      f"{m['batch_mean']:.2f}")
    console.print(table)


def summarize_metrics(text: str) -> dict:
    """Per version: requests, errors, mean and p95 latency (from histogram buckets), mean batch size."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict] = {}
    buckets: dict[str, list[tuple[float, float]]] = {}

    def entry(ref: str) -> dict:
        return out.setdefault(ref, {"requests": 0.0, "errors": 0.0, "latency_sum": 0.0, "latency_count": 0.0,
                                    "batch_sum": 0.0, "batch_count": 0.0})

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            ref = sample.labels.get("version")
            if ref is None:
                continue
            e = entry(ref)
            if sample.name == "modelyard_requests_total":
                e["requests"] += sample.value
            elif sample.name == "modelyard_errors_total":
                e["errors"] += sample.value
            elif sample.name == "modelyard_request_latency_seconds_sum":
                e["latency_sum"] += sample.value
            elif sample.name == "modelyard_request_latency_seconds_count":
                e["latency_count"] += sample.value
            elif sample.name == "modelyard_request_latency_seconds_bucket":
                buckets.setdefault(ref, []).append((float(sample.labels["le"]), sample.value))
            elif sample.name == "modelyard_batch_size_sum":
                e["batch_sum"] += sample.value
            elif sample.name == "modelyard_batch_size_count":
                e["batch_count"] += sample.value
    result = {}
    for ref, e in out.items():
        if ref == "none" and not e["requests"]:
            continue
        p95 = None
        series = sorted(buckets.get(ref, []))
        if series and series[-1][1] > 0:
            target = 0.95 * series[-1][1]
            p95 = next((le for le, count in series if count >= target), None)
        result[ref] = {
            "requests": e["requests"], "errors": e["errors"],
            "latency_mean_ms": 1000 * e["latency_sum"] / e["latency_count"] if e["latency_count"] else 0.0,
            "latency_p95_ms": None if p95 is None or p95 == float("inf") else 1000 * p95,
            "batch_mean": e["batch_sum"] / e["batch_count"] if e["batch_count"] else 0.0,
        }
    return result
