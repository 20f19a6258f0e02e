"""``modelyard edge devices | register | twin | logs | alarms | ack | restart | collect-logs | deregister | package |
package-skill | events | bundles | deploy | deployments | deployment | cancel``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from modelyard.cli._common import console, get_client, print_json

app = typer.Typer(no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine output.")]
LabelOpt = Annotated[list[str] | None, typer.Option("--label", "-l", help="key=value (repeatable).")]


def _labels(items: list[str] | None) -> dict:
    from modelyard.edge.devices import parse_labels

    return parse_labels(items or [])


@app.command("register")
def register(name: str, label: LabelOpt = None,
             activation_ttl: Annotated[int, typer.Option(help="Seconds the activation code stays valid.")] = 86400,
             as_json: JsonOpt = False) -> None:
    """Register a device; prints its one-time activation code (for 'modelyard-agent activate')."""
    with get_client() as client:
        device = client.edge.register(name, _labels(label), activation_ttl)
    if as_json:
        print_json(device)
        return
    console.print(f"{device['id']} {escape(device['name'])} registered; activation code (once, expires "
                  f"{device['activation_expires_at']}):")
    console.print(device["activation_code"], highlight=False, soft_wrap=True)


@app.command("devices")
def devices(label: LabelOpt = None, as_json: JsonOpt = False) -> None:
    """List devices (filter by labels): status, online, agent version, skills."""
    from rich.table import Table

    with get_client(read_only=True) as client:
        data = client.edge.devices(_labels(label))
    if as_json:
        print_json(data)
        return
    table = Table("name", "id", "labels", "status", "online", "last seen", "skills", box=None)
    for d in data["items"]:
        skills = ", ".join(f"{s['name']}:{s['bundle']} ({s['status']})" for s in d["skills"]) or "-"
        table.add_row(escape(d["name"]), d["id"], escape(",".join(f"{k}={v}" for k, v in d["labels"].items())),
                      d["status"], "yes" if d["online"] else "no", d["last_seen_at"] or "-", escape(skills))
    console.print(table)


@app.command("twin")
def twin(device: str, as_json: JsonOpt = False) -> None:
    """The device twin: desired vs reported state."""
    with get_client(read_only=True) as client:
        data = client.edge.twin(device)
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]{escape(data['name'])}[/] {data['id']} {data['status']} "
                  f"{'online' if data['online'] else 'offline'} (last seen {data['last_seen_at'] or 'never'})")
    console.print("desired:", escape(json.dumps(data["desired"], indent=1)))
    console.print("reported:", escape(json.dumps({k: v for k, v in data["reported"].items() if k != "hardware"},
                                                 indent=1)))


@app.command("logs")
def logs(device: str, tail: Annotated[int, typer.Option(help="Last N lines.")] = 200, as_json: JsonOpt = False) -> None:
    """The device's uploaded log lines (bounded)."""
    with get_client(read_only=True) as client:
        data = client.edge.logs(device, tail)
    if as_json:
        print_json(data)
        return
    for line in data["lines"]:
        console.print(escape(line["line"]), highlight=False, soft_wrap=True)


@app.command("alarms")
def alarms(device: Annotated[str | None, typer.Option(help="One device's alarms.")] = None,
           include_acknowledged: Annotated[bool, typer.Option("--all", help="Acknowledged ones too.")] = False,
           as_json: JsonOpt = False) -> None:
    """Alarms: skill crashed, disk nearly full, source lost, bundle refused."""
    with get_client(read_only=True) as client:
        data = client.edge.alarms(device, include_acknowledged)
    if as_json:
        print_json(data)
        return
    for a in data["items"]:
        state = f"acked by {a['acknowledged_by']}" if a["acknowledged_at"] else "open"
        console.print(f"{a['id']} {a['created_at']} {escape(a['device'])} {a['kind']} ({state}): "
                      f"{escape(a['message'])}", highlight=False, soft_wrap=True)


@app.command("ack")
def ack(alarm_id: str, as_json: JsonOpt = False) -> None:
    """Acknowledge an alarm."""
    with get_client() as client:
        data = client.edge.ack(alarm_id)
    print_json(data) if as_json else console.print(f"{alarm_id} acknowledged")


@app.command("restart")
def restart(device: str, skill: Annotated[str, typer.Option(help="The skill to restart.")] = "inference",
            as_json: JsonOpt = False) -> None:
    """Ask the device to restart a skill (on its next poll)."""
    with get_client() as client:
        data = client.edge.action(device, "restart_skill", skill)
    print_json(data) if as_json else console.print(f"restart of {escape(skill)} queued ({data['id']})")


@app.command("collect-logs")
def collect_logs(device: str, as_json: JsonOpt = False) -> None:
    """Ask the device to upload its skills' recent log lines."""
    with get_client() as client:
        data = client.edge.action(device, "collect_logs")
    print_json(data) if as_json else console.print(f"log collection queued ({data['id']})")


@app.command("deregister")
def deregister(device: str, as_json: JsonOpt = False) -> None:
    """Deregister a device: its credential stops working at once."""
    with get_client() as client:
        data = client.edge.deregister(device)
    print_json(data) if as_json else console.print(f"{escape(data['name'])} deregistered")


@app.command("package")
def package(model: str,
            target: Annotated[str, typer.Option(help="cpu-x86, cpu-arm, openvino-cpu or ascend-310.")] = "cpu-x86",
            int8: Annotated[bool, typer.Option("--int8/--no-int8", help="Try INT8 static quantisation.")] = True,
            prune: Annotated[bool, typer.Option("--prune/--no-prune",
                                                help="Try channel and magnitude pruning.")] = True,
            max_accuracy_drop: Annotated[float, typer.Option(help="Gate for each step (0.01 = 1 %).")] = 0.01,
            calibration: Annotated[str | None, typer.Option(
                "--calibration", help="DATASET@VERSION to calibrate INT8 on (default: the dataset in the model's "
                                      "lineage; required for INT8 when it names none).")] = None,
            wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the edge.package job (default) or "
                                                                        "print the queued job and return.")] = True,
            as_json: JsonOpt = False) -> None:
    """Package MODEL@V for a device class into a signed bundle (an edge.package job)."""
    from modelyard.cli.automl import finish, run_job

    spec = {"model": model, "target": target, "int8": int8, "prune": prune, "max_accuracy_drop": max_accuracy_drop,
            "calibration": calibration}
    with get_client() as client:
        job = run_job(client, "edge.package", spec, quiet=as_json, wait=wait)
    if not wait:
        print_json(job) if as_json else console.print(
            f"job {job['id']} queued (edge.package); follow it with 'modelyard jobs logs {job['id']} --follow'",
            highlight=False)
        return
    data = finish(job)
    if as_json:
        print_json(data)
        return
    figures = data["figures"]
    console.print(f"{data['id']} {escape(data['model'])} for {data['target']} ({data['size']} bytes); applied: "
                  f"{', '.join(figures['applied']) or 'none'}; latency {figures['float']['latency_ms_batch1']} -> "
                  f"{figures['final']['latency_ms_batch1']} ms; size {figures['float']['size_bytes']} -> "
                  f"{figures['final']['size_bytes']} bytes")
    for step in figures["steps"]:
        console.print(f"  {step['step']}: {'kept' if step['accepted'] else 'refused'} ({escape(step['reason'])})")


@app.command("package-skill")
def package_skill(skill: str, version: Annotated[str | None, typer.Option(help="Default: the newest.")] = None,
                  target: Annotated[str, typer.Option(help="cpu-x86, cpu-arm or openvino-cpu.")] = "cpu-x86",
                  as_json: JsonOpt = False) -> None:
    """Package a market skill into a signed bundle (then 'modelyard edge deploy BUNDLE --skill NAME')."""
    with get_client() as client:
        data = client.edge.package_skill(skill, version, target)
    if as_json:
        print_json(data)
        return
    console.print(f"{data['id']} {escape(data['model'])} {data['target']} {data['size']} bytes")


@app.command("events")
def events(device: str, channel: Annotated[str | None, typer.Option(help="One channel's events.")] = None,
           skill: Annotated[str | None, typer.Option(help="One skill's events.")] = None,
           limit: Annotated[int, typer.Option(help="Page size (newest first).")] = 50,
           offset: Annotated[int, typer.Option(help="Skip this many of the newest.")] = 0,
           as_json: JsonOpt = False) -> None:
    """Events the device's skills emitted, per channel, newest first."""
    with get_client(read_only=True) as client:
        data = client.edge.events(device, channel=channel, skill=skill, offset=offset, limit=limit)
    if as_json:
        print_json(data)
        return
    counts = ", ".join(f"{escape(k)}: {v}" for k, v in sorted(data["per_channel"].items())) or "none"
    console.print(f"{escape(data['device'])}: {data['total']} event(s) match; per channel {counts}")
    for e in data["items"]:
        console.print(f"{e['at']} {escape(e['channel'])} {escape(e['skill'])} {escape(json.dumps(e['event']))}"
                      + (" [thumbnail]" if e["thumbnail"] else ""), highlight=False, soft_wrap=True)


@app.command("bundles")
def bundles(as_json: JsonOpt = False) -> None:
    """List bundles."""
    with get_client(read_only=True) as client:
        data = client.edge.bundles()
    if as_json:
        print_json(data)
        return
    for b in data["items"]:
        console.print(f"{b['id']} {escape(b['model'])} {b['target']} {b['size']} bytes {b['created_at']}")


@app.command("deploy")
def deploy(bundle: str,
           device: Annotated[str | None, typer.Option(help="One device (name or id).")] = None,
           label: LabelOpt = None,
           group: Annotated[str | None, typer.Option(help="Devices labelled group=GROUP.")] = None,
           canary: Annotated[int | None, typer.Option(help="Canary device count (default 1).")] = None,
           canary_percent: Annotated[float | None, typer.Option(help="Canary share of the devices.")] = None,
           watch: Annotated[float, typer.Option(help="Seconds a device must stay healthy.")] = 30.0,
           max_error_rate: Annotated[float, typer.Option(help="Health gate: error share.")] = 0.05,
           max_latency_ms: Annotated[float | None, typer.Option(help="Health gate: median latency.")] = None,
           config: Annotated[str, typer.Option(help="Skill config as JSON.")] = "{}",
           skill: Annotated[str, typer.Option(help="The skill's name on the device (a skill bundle: its name).")]
           = "inference",
           channels: Annotated[str, typer.Option(help="Video channels as JSON: {id: {source, fps, config}}.")] = "{}",
           as_json: JsonOpt = False) -> None:
    """Deploy a bundle with a canary; supersedes older deployments on the same devices."""
    from modelyard.core.errors import InvalidInput

    try:
        skill_config = json.loads(config)
        skill_channels = json.loads(channels)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--config/--channels is not JSON: {exc}") from None
    gate = {"watch_s": watch, "max_error_rate": max_error_rate, "max_latency_ms": max_latency_ms}
    with get_client() as client:
        data = client.edge.deploy(bundle, device=device, selector=_labels(label) or None, group=group, canary=canary,
                                  canary_percent=canary_percent, gate=gate, config=skill_config, skill=skill,
                                  channels=skill_channels)
    _print_deployment(data, as_json)


@app.command("deployments")
def deployments(as_json: JsonOpt = False) -> None:
    """List deployments, newest first."""
    with get_client(read_only=True) as client:
        data = client.edge.deployments()
    if as_json:
        print_json(data)
        return
    for d in data["items"]:
        states = ", ".join(f"{x['device']}={x['state']}" for x in d["devices"])
        console.print(f"{d['id']} {d['bundle']} {d['status']}: {escape(states)} {escape(d['message'])}")


@app.command("deployment")
def deployment(deployment_id: str, as_json: JsonOpt = False) -> None:
    """One deployment with each device's state."""
    with get_client(read_only=True) as client:
        data = client.edge.deployment(deployment_id)
    _print_deployment(data, as_json)


@app.command("cancel")
def cancel(deployment_id: str, as_json: JsonOpt = False) -> None:
    """Cancel a deployment in any state."""
    with get_client() as client:
        data = client.edge.cancel(deployment_id)
    _print_deployment(data, as_json)


def _print_deployment(data: dict, as_json: bool) -> None:
    if as_json:
        print_json(data)
        return
    console.print(f"{data['id']} bundle {data['bundle']}: {data['status']} {escape(data['message'])}")
    for d in data["devices"]:
        console.print(f"  {escape(d['device'])}{' (canary)' if d['canary'] else ''}: {d['state']} "
                      f"{escape(d['message'])}", highlight=False, soft_wrap=True)
