"""``modelyard skills list | show | measure | publish | template | install | deploy | serve | check``: the skill
market and the EI-style skill services (``deploy``: a skill as a platform service)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._common import console, get_client, print_json

app = typer.Typer(no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine output.")]


def _figure(row: dict) -> str:
    if row.get("latency_ms") is None:
        return "not measured"
    check = {True: "[green]ok[/]", False: "[red]failed[/]"}.get(row.get("self_check"), "-")
    return f"{row['latency_ms']:g} ms, self-check {check}"


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """Every skill in the market: built-in and published, with measured figures."""
    with get_client(read_only=True) as client:
        rows = client.skills.list()
    if as_json:
        print_json({"schema": "modelyard.skills/1", "skills": rows})
        return
    from rich.table import Table

    table = Table("name", "version", "inputs", "license", "offline", "figures", "description")
    for row in rows:
        table.add_row(row["name"] + ("" if row["builtin"] else " (published)"), row["version"],
                      ", ".join(row["inputs"]), row["license"], "yes" if row["offline"] else "no", _figure(row),
                      row["description"])
    console.print(table)


@app.command("show")
def show(name: str, version: Annotated[str | None, typer.Option(help="Default: the newest.")] = None,
         as_json: JsonOpt = False) -> None:
    """One skill: inputs/outputs, config schema, models with hashes, size, license, offline, figures."""
    with get_client(read_only=True) as client:
        data = client.skills.show(name, version)
    if as_json:
        print_json(data)
        return
    import json

    console.print(f"[bold]{data['name']}[/] {data['version']}  {data['description']}", highlight=False)
    console.print(f"inputs {', '.join(data['inputs'])}; license {data['license']}; offline "
                  f"{'yes' if data['offline'] else 'no'}; size {data['size_bytes'] / 1e6:.1f} MB", highlight=False)
    for model in data["models"]:
        state = {True: "[green]verified[/]", False: f"[red]{model.get('problem')}[/]"}.get(model.get("verified"), "")
        console.print(f"model {model['name']}: {model.get('package', model.get('registry'))} "
                      f"{model.get('file', '')} sha256 {model['sha256'][:16]}… {state}", highlight=False)
    console.print("config (global): " + json.dumps(data["config"]["global"]), highlight=False)
    console.print("config (per channel): " + json.dumps(data["config"]["channel"]), highlight=False)
    console.print("figures: " + (_figure(data["figures"]) if data["figures"] else "not measured "
                                 f"(modelyard skills measure {data['name']})"), highlight=False)


@app.command("measure")
def measure(name: str, as_json: JsonOpt = False) -> None:
    """Run the skill's self-check and time it on this machine; the market shows the figures."""
    with get_client() as client:
        data = client.skills.measure(name)
    if as_json:
        print_json(data)
        return
    console.print(f"{name}: {_figure(data)}; self-check {data['self_check_detail']}", highlight=False)
    if not data["self_check"]:
        raise typer.Exit(1)


@app.command("publish")
def publish(folder: Path, as_json: JsonOpt = False) -> None:
    """Publish your own skill (a folder with skill.yaml and logic.py) to the market."""
    with get_client() as client:
        data = client.skills.publish(folder)
    print_json(data) if as_json else console.print(f"published {data['name']} {data['version']}", highlight=False)


@app.command("template")
def template(
    template_name: Annotated[str, typer.Argument(
        metavar="TEMPLATE", help="zone-count, line-crossing, class-seen (detector) or classifier-seen (classifier)")],
    name: str,
    model: Annotated[str, typer.Option(help="A registered ONNX detector (or classifier): NAME@VERSION or @ALIAS.")],
    version: Annotated[str, typer.Option()] = "1.0",
    input_size: Annotated[str, typer.Option(help="The detector's input WIDTHxHEIGHT.")] = "320x320",
    as_json: JsonOpt = False,
) -> None:
    """Publish a code-free skill: a registered detector or classifier plus a rule template (zone, line or class)."""
    from modelyard.core.errors import InvalidInput

    try:
        width, height = (int(part) for part in input_size.lower().split("x"))
    except ValueError:
        raise InvalidInput(f"--input-size {input_size!r}: expected WIDTHxHEIGHT, e.g. 320x320") from None
    with get_client() as client:
        data = client.skills.publish_template(template_name, name, model, version=version,
                                              input_size=(width, height))
    print_json(data) if as_json else console.print(f"published {data['name']} {data['version']} "
                                                   f"({template_name} with {model})", highlight=False)


@app.command("install")
def install(name: str, destination: Path, version: Annotated[str | None, typer.Option()] = None) -> None:
    """Copy a skill package into a local skills folder (a device's; on a fleet, install with a deployment)."""
    from modelyard.cli._common import OPTIONS
    from modelyard.core.settings import Settings
    from modelyard.edge.skills.market import install as install_skill

    target = install_skill(Settings.load(OPTIONS.home).home, name, destination, version)
    console.print(f"installed {name} in {target}", highlight=False)


@app.command("deploy")
def deploy(
    name: Annotated[str, typer.Argument(help="A skill in the market (modelyard skills list).")],
    service: Annotated[str | None, typer.Option(help="Service name (default: the skill's).")] = None,
    version: Annotated[str | None, typer.Option(help="Skill version (default: the newest).")] = None,
    replicas: Annotated[int, typer.Option(help="Replica processes.")] = 1,
    config: Annotated[str | None, typer.Option(help="The skill's global config as a JSON object.")] = None,
    port: Annotated[int, typer.Option(help="Service port (0: a free one, kept across restarts).")] = 0,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    public: Annotated[bool, typer.Option("--public", help="Calls need no token.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return at once instead of waiting until it "
                                          "serves.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the service to serve.")] = 300.0,
    as_json: JsonOpt = False,
) -> None:
    """Deploy a skill as a platform service (the EI-style ready API): POST its JSON body to the service's
    /v1/predict; manage it with 'modelyard services' (show, logs, metrics, stop). Waits until it serves."""
    import json

    from modelyard.core.errors import InvalidInput, ModelyardError

    try:
        skill_config = json.loads(config) if config else {}
    except ValueError as exc:
        raise InvalidInput(f"--config is not JSON: {exc}") from None
    if not isinstance(skill_config, dict):
        raise InvalidInput("--config must be a JSON object")
    with get_client() as client:
        try:
            data = client.skills.deploy(name, service, version=version, replicas=replicas, config=skill_config,
                                        port=port, host=host, public=public, wait=not no_wait, timeout=timeout)
        except TimeoutError as exc:
            raise ModelyardError(str(exc), code="timeout") from exc
    if as_json:
        print_json(data)
        return
    served = ", ".join(t["ref"] for t in data["traffic"]) or name
    console.print(f"service [bold]{data['name']}[/] revision {data['revision']} {data['status']}: {served} at "
                  f"{data['url']}/v1/predict ({data['replicas']} replica(s), "
                  f"{'public' if data['public'] else 'token required'})", highlight=False)


@app.command("serve")
def serve(names: Annotated[list[str] | None, typer.Argument(help="Skills to serve (default: all built-in).")] = None,
          host: Annotated[str, typer.Option()] = "127.0.0.1", port: Annotated[int, typer.Option()] = 8090) -> None:
    """Serve built-in skills as EI-style REST services: POST /v1/skills/NAME, GET /v1/skills/NAME/health."""
    import uvicorn

    from modelyard.edge.skills.service import create_app

    uvicorn.run(create_app(names or None), host=host, port=port, log_level="warning")


@app.command("check")
def check(skill_dir: Path, config: Annotated[Path | None, typer.Option(help="YAML/JSON: config + channels.")] = None
          ) -> None:
    """Validate a skill folder (manifest, schemas, logic hooks) and, with --config, a config for it."""
    import yaml

    from modelyard.edge.skills.manifest import load_logic, load_manifest, validate_config

    manifest = load_manifest(skill_dir)
    load_logic(skill_dir, manifest)
    if config is not None:
        data = yaml.safe_load(config.read_text()) or {}
        validate_config(manifest, data.get("config"), data.get("channels"))
    console.print(f"{manifest.name} {manifest.version}: valid", highlight=False)
