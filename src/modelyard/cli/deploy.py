"""``modelyard services deploy N@V|N@ALIAS --name S ...`` (shortcut ``modelyard deploy``): serve a model version
as a real-time service."""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli._common import console, get_client, print_json

app = typer.Typer()


@app.command("deploy")
def deploy(
    model: Annotated[str, typer.Argument(help="NAME@VERSION, NAME@ALIAS or NAME (newest).")],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Service name (default: the model's).")] = None,
    backend: Annotated[str, typer.Option(
        help="auto (ONNX on the GPU when there is one), or backend:device (onnxruntime:cpu, openvino:cpu, "
             "torch:cuda: ONNX run by torch kernels...).")] = "auto",
    replicas: Annotated[int, typer.Option(help="Replica processes.")] = 1,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Most rows per batched inference (1: off).")] = 16,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", help="Longest a batch waits for more "
                                               "requests under concurrent traffic.")] = 5.0,
    instances: Annotated[int, typer.Option(help="Inferences a replica runs at once (ONNX Runtime).")] = 2,
    port: Annotated[int, typer.Option(help="Service port (0: a free one, kept across restarts).")] = 0,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    public: Annotated[bool, typer.Option("--public", help="Predict needs no token.")] = False,
    pin: Annotated[bool, typer.Option("--pin", help="Deployed from an alias: keep the version it names now "
                                      "(default: follow the alias when it moves).")] = False,
    on: Annotated[str, typer.Option("--on", help="Where the replicas run: local (this machine) or ray (placed by "
                                    "the Ray cluster at ray_address).")] = "local",
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return at once instead of waiting until it "
                                          "serves.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the service to serve.")] = 300.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine output.")] = False,
) -> None:
    """Deploy a model version as a service (a new revision when the service exists); waits until it serves.

    If the new version cannot load, the previous one keeps serving and this exits 1 with the reason. Deployed from
    an alias (NAME@production), the service follows the alias unless --pin."""
    from modelyard.core.errors import ModelyardError

    with get_client() as client:
        try:
            service = client.services.deploy(
                model, name, backend=backend, replicas=replicas, max_batch=max_batch, max_wait_ms=max_wait_ms,
                instances=instances, port=port, host=host, public=public, follow_alias=not pin,
                wait=not no_wait, timeout=timeout, placement=on)
        except TimeoutError as exc:
            raise ModelyardError(str(exc), code="timeout") from exc
    if as_json:
        print_json(service)
        return
    traffic = ", ".join(f"{t['ref']}={t['weight']:g}%" for t in service["traffic"]) or model
    console.print(f"service [bold]{service['name']}[/] revision {service['revision']} {service['status']}: "
                  f"{traffic} at {service['url']}/v1/predict ({service['replicas']} replica(s), "
                  f"{'public' if service['public'] else 'token required'})", highlight=False)
