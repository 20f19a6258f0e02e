"""``modelyard models register | list | show | export | alias | delete``: the model registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._common import console, get_client, print_json

app = typer.Typer(no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine output.")]


def _pairs(items: list[str] | None, option: str, number: bool = False) -> dict:
    from modelyard.core.errors import InvalidInput

    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{option} {item!r}: expected key=value")
        if number:
            try:
                out[key] = float(value)
            except ValueError:
                raise InvalidInput(f"{option} {item!r}: {value!r} is not a number") from None
        else:
            out[key] = value
    return out


def _json_option(text: str | None, option: str) -> dict | None:
    from modelyard.core.errors import InvalidInput

    if text is None:
        return None
    source = Path(text)
    raw = source.read_text(encoding="utf-8") if source.is_file() else text
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{option}: not JSON (or a JSON file): {exc.msg}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{option}: must be a JSON object")
    return value


def _detection_task(postprocess: str | None) -> dict | None:
    """``--postprocess`` as a detection task: a bare kind (``yolov8``) or a JSON object (whose ``classes``, if
    any, name the class indices)."""
    if postprocess is None:
        return None
    post = {"kind": postprocess} if postprocess in ("boxes", "yolov8") else _json_option(postprocess, "--postprocess")
    classes = post.pop("classes", None)
    return {"type": "detection", "postprocess": post, **({"classes": classes} if classes is not None else {})}


@app.command("register")
def register(
    source: Annotated[str | None, typer.Argument(
        help="Model file or spec: .onnx, .xml (OpenVINO IR), ModelSpec .yaml/.json, LightGBM .txt, .pkl/.joblib "
             "(with --trust-pickle), an MLflow model directory (onnx, sklearn or pytorch flavour), or a Hugging Face "
             "folder (with --task). Omit with --from-job to register the job's output.")] = None,
    name: Annotated[str, typer.Option("--name", "-n", help="Model name.")] = ...,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="Tag key=value (repeatable).")] = None,
    metrics: Annotated[list[str] | None, typer.Option("--metric", help="Metric key=number (repeatable).")] = None,
    lineage: Annotated[list[str] | None, typer.Option(
        "--lineage", help="Lineage key=value, e.g. dataset=cifar@3.")] = None,
    from_job: Annotated[str | None, typer.Option("--from-job", help="The job this model came from.")] = None,
    description: Annotated[str, typer.Option(help="A sentence for the model card.")] = "",
    preprocessing: Annotated[str | None, typer.Option(
        help="Image preprocessing as JSON or a JSON file, e.g. '{\"size\": [224, 224], \"mean\": [0.485, 0.456, "
             "0.406], \"std\": [0.229, 0.224, 0.225]}'.")] = None,
    postprocess: Annotated[str | None, typer.Option(
        help="Make it a detector: boxes (the graph outputs boxes, scores, classes) or yolov8 (one (1, 4 + C, A) "
             "output decoded here), or the whole post-processor as JSON, e.g. '{\"kind\": \"yolov8\", "
             "\"score_threshold\": 0.3, \"classes\": [\"cat\", \"dog\"]}'.")] = None,
    trust_pickle: Annotated[bool, typer.Option("--trust-pickle", help="Allow loading a pickled estimator "
                                               "(runs code from the file: only files you made).")] = False,
    hf_task: Annotated[str | None, typer.Option(
        "--task", help="For a Hugging Face folder (config.json + safetensors + tokenizer or preprocessor): "
                       "text-generation (a foundation language model, kept as its files; a .gguf file needs no "
                       "--task), foundation (an encoder kept as its files, a base for tune --stage classify), "
                       "text-classification, image-classification or feature-extraction.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a new immutable version of a model."""
    with get_client() as client:
        version = client.models.register(
            source, name, metrics=_pairs(metrics, "--metric", number=True), tags=_pairs(tags, "--tag"),
            lineage=_pairs(lineage, "--lineage"), description=description, from_job=from_job,
            preprocessing=_json_option(preprocessing, "--preprocessing"), trust_pickle=trust_pickle,
            hf_task=hf_task, task=_detection_task(postprocess),
        )
    if as_json:
        print_json(version)
        return
    console.print(f"registered [bold]{version['ref']}[/] ({version['format']} from {version['source_format']}, "
                  f"{version['size']} bytes)", highlight=False)
    _print_signature(version)


def _print_signature(version: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table("", "name", "dtype", "shape", box=None)
    for kind in ("inputs", "outputs"):
        for t in version["signature"][kind]:
            shape = "(" + ", ".join("?" if d is None else str(d) for d in t["shape"]) + ")"
            table.add_row(kind[:-1], escape(t["name"]), t["dtype"], escape(shape))
    console.print(table)


@app.command("list")
def list_models(as_json: JsonOpt = False) -> None:
    """List models with their newest version and aliases."""
    from rich.table import Table

    with get_client(read_only=True) as client:
        data = client.models.list()
    if as_json:
        print_json(data)
        return
    table = Table("name", "latest", "versions", "aliases", "created", box=None)
    for item in data["items"]:
        aliases = ", ".join(f"{a}→{v}" for a, v in item["aliases"].items())
        table.add_row(item["name"], str(item["latest"] or "-"), str(item["versions"]), aliases or "-",
                      (item["created_at"] or "")[:19])
    console.print(table)


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME (all versions), NAME@VERSION or NAME@ALIAS.")],
    card: Annotated[bool, typer.Option("--card", help="Print the version's model card (Markdown).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a model (its versions) or one version (signature, metrics, tags, lineage)."""
    with get_client(read_only=True) as client:
        if "@" not in ref and not card:
            data = client.models.get(ref.removeprefix("modelyard://"))
            if as_json:
                print_json(data)
                return
            _print_model(data)
            return
        if card and not as_json:
            console.print(client.models.card(ref), highlight=False, markup=False)
            return
        version = client.models.version(ref)
    if as_json:
        print_json(version)
        return
    console.print(f"[bold]{version['ref']}[/] {version['format']} (from {version['source_format']}), "
                  f"{version['size']} bytes, created {version['created_at'][:19]} by {version['created_by'] or '-'}",
                  highlight=False)
    if version["aliases"]:
        console.print("aliases: " + ", ".join(version["aliases"]), highlight=False)
    _print_signature(version)
    if version["metrics"]:
        console.print("metrics: " + ", ".join(f"{k}={v:.6g}" for k, v in version["metrics"].items()), highlight=False)
    if version["tags"]:
        console.print("tags: " + ", ".join(f"{k}={v}" for k, v in version["tags"].items()), highlight=False)
    if version["lineage"]:
        console.print("lineage: " + json.dumps(version["lineage"]), highlight=False, soft_wrap=True, markup=False)


def _print_model(data: dict) -> None:
    from rich.table import Table

    console.print(f"[bold]{data['name']}[/] " + (", ".join(f"{a}→{v}" for a, v in data["aliases"].items()) or
                                                 "no aliases"), highlight=False)
    table = Table("version", "format", "source", "size", "metrics", "aliases", "created", box=None)
    for v in data["versions"]:
        table.add_row(str(v["version"]), v["format"], v["source_format"], str(v["size"]),
                      ", ".join(f"{k}={m:.4g}" for k, m in v["metrics"].items()) or "-",
                      ", ".join(v["aliases"]) or "-", v["created_at"][:19])
    console.print(table)


@app.command("alias")
def alias(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION the alias should point at (or NAME with --delete).")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias, e.g. production or staging.")],
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias instead.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Point an alias at a version (aliases move; versions never change)."""
    with get_client() as client:
        if delete:
            result = client.models.delete_alias(ref.partition("@")[0].removeprefix("modelyard://"), alias_name)
        else:
            result = client.models.alias(ref, alias_name)
    if as_json:
        print_json(result)
    elif delete:
        console.print(f"removed alias {alias_name} of {result['name']}", highlight=False)
    else:
        console.print(f"{result['name']}@{alias_name} → version {result['version']}", highlight=False)


@app.command("export")
def export(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION or NAME@ALIAS.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write (must not exist or be empty).")],
    fmt: Annotated[str, typer.Option("--format", help="files (the stored files as they are) or mlflow (an MLflow "
                                     "model directory with the onnx flavour).")] = "files",
    as_json: JsonOpt = False,
) -> None:
    """Download a version's files (verified against their digests), as they are or as an MLflow model."""
    with get_client() as client:
        result = client.models.export(ref, out, fmt)
    if as_json:
        print_json(result)
    else:
        console.print(f"wrote {result['ref']} as {result['format']} to {result['path']}", highlight=False)


@app.command("delete")
def delete(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION (one version) or NAME (the whole model).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete a version or a whole model (refused while a running service or a queued or running job uses it)."""
    if not yes and not as_json and not typer.confirm(f"delete {ref}?", default=False):
        raise typer.Exit(1)
    with get_client() as client:
        result = client.models.delete(ref)
    if as_json:
        print_json(result)
    else:
        console.print(f"deleted {ref} ({result['versions_deleted']} version(s))", highlight=False)
