"""``modelyard data import | list | show | stats | prep | export | sample | delete``: datasets with immutable
versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._common import console, get_client, print_json

app = typer.Typer(no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine output.")]


def _counts(version: dict) -> str:
    counts = version["split"].get("counts", {})
    return f"train {counts.get('train', 0)} / validation {counts.get('validation', 0)}"


def _print_version(version: dict) -> None:
    unit = {"tabular": "rows", "text-classification": "texts", "text": "records"}.get(version["kind"], "images")
    if version["kind"] == "object-detection":
        unit += f" with {version['stats'].get('boxes', 0)} boxes"
    schema = version["data_schema"]
    console.print(f"[bold]{version['ref']}[/] ({version['display_version']}) {version['kind']}: {version['items']} "
                  f"{unit}, {_counts(version)}, {version['size']} bytes", highlight=False)
    if version["kind"] == "tabular":
        console.print(f"label {schema['label']!r}, task {schema['task']}", highlight=False)
    if schema.get("classes"):
        shown = ", ".join(schema["classes"][:20]) + (" ..." if len(schema["classes"]) > 20 else "")
        console.print(f"classes ({len(schema['classes'])}): {shown}", highlight=False)
    lineage = version["lineage"]
    if lineage.get("parent"):
        step = dict(lineage["step"])
        console.print(f"lineage: {lineage['parent']} -> {step.pop('op')} {step or ''}", highlight=False)
    else:
        console.print(f"source: {version['source'].get('name')} ({version['source'].get('format')})", highlight=False)
    for note in version["source"].get("notes", []):
        console.print(f"[dim]note: {note}[/]", highlight=False)
    console.print(f"manifest {version['manifest']}", highlight=False)


@app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(help="CSV/Parquet table, image folder (class/*.jpg|png|bmp), .zip/.tar of "
                                              "one, a CSV of path,label, or a COCO, Pascal VOC, YOLO or Label "
                                              "Studio folder.")],
    name: Annotated[str, typer.Option("--name", help="Dataset name (created on first import).")],
    kind: Annotated[str, typer.Option("--kind", help="auto, tabular, image-classification, object-detection, "
                                                     "multilabel-classification, text-classification (a CSV "
                                                     "of text,label) or text (a corpus: text files, JSONL/CSV of text, "
                                                     "instruction/response or text/label).")] = "auto",
    fmt: Annotated[str | None, typer.Option("--format", help="Annotation format: auto, coco, voc, yolo, labelstudio "
                                                             "or csv (default: read annotations when --kind is "
                                                             "object-detection or auto finds an annotation "
                                                             "folder).")] = None,
    label: Annotated[str | None, typer.Option("--label", help="Label column of a table (default: label/target/"
                                                              "class/y, else the last column).")] = None,
    task: Annotated[str, typer.Option("--task", help="auto, classification or regression (tables).")] = "auto",
    validation_fraction: Annotated[float, typer.Option("--validation-fraction", help="Share of items held out "
                                                                                     "for validation.")] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split.")] = 0,
    description: Annotated[str, typer.Option("--description", help="Free text kept on the version.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Import a file or folder as the next immutable version of a dataset."""
    with get_client() as client:
        version = client.data.import_path(path, name, kind=kind, label=label, task=task,
                                          validation_fraction=validation_fraction, seed=seed, description=description,
                                          fmt=fmt)
        check = client.data.stats(version["ref"])["check"]
    if as_json:
        print_json(version)
        return
    _print_version(version)
    _print_check(check)


def _print_check(check: dict) -> None:
    if check["trainable"]:
        console.print("[green]ready for training[/]")
    else:
        for problem in check["problems"]:
            console.print(f"[red]blocks training:[/] {problem}", highlight=False)
    for warning in check["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


@app.command("list")
def list_command(as_json: JsonOpt = False) -> None:
    """List datasets with their latest version."""
    from rich.table import Table

    with get_client(read_only=True) as client:
        data = client.data.list()
    if as_json:
        print_json(data)
        return
    table = Table("name", "kind", "latest", "items", "classes", "created", box=None)
    for item in data["items"]:
        table.add_row(item["name"], item["kind"], item["latest"], str(item["items"]), str(item["classes"]),
                      (item["created_at"] or "")[:19])
    console.print(table)


@app.command("show")
def show_command(ref: Annotated[str, typer.Argument(help="NAME (all versions) or NAME@VERSION.")],
                 as_json: JsonOpt = False) -> None:
    """Show a dataset's versions, or one version."""
    with get_client(read_only=True) as client:
        data = client.data.get(ref) if "@" in ref else client.data.versions(ref)
    if as_json:
        print_json(data)
        return
    if "@" in ref:
        _print_version(data)
        return
    from rich.table import Table

    table = Table("version", "items", "split", "lineage", "created", box=None)
    for version in data["versions"]:
        lineage = version["lineage"]
        step = f"{lineage['parent']} -> {lineage['step']['op']}" if lineage.get("parent") else "imported " + str(
            version["source"].get("name"))
        table.add_row(f"{version['ref']} ({version['display_version']})", str(version["items"]), _counts(version),
                      step, version["created_at"][:19])
    console.print(f"[bold]{data['name']}[/] {data['kind']}")
    console.print(table)


@app.command("stats")
def stats_command(ref: Annotated[str, typer.Argument(help="NAME@VERSION.")], as_json: JsonOpt = False) -> None:
    """Statistics of a version and whether it can be trained on (the ExeML minimums, broken files)."""
    with get_client(read_only=True) as client:
        data = client.data.stats(ref)
    if as_json:
        print_json(data)
        return
    stats = data["stats"]
    console.print(f"[bold]{data['ref']}[/] {data['kind']}", highlight=False)
    if data["kind"] == "object-detection":
        _print_detection_stats(stats)
    elif data["kind"] == "multilabel-classification":
        per_image = stats["labels_per_image"]
        console.print(f"images {stats['images']} (unlabeled {stats['unlabeled']}), labels per image "
                      f"{per_image.get('min', 0)}-{per_image.get('max', 0)} (mean {per_image.get('mean', 0)})",
                      highlight=False)
    elif data["kind"] == "text-classification":
        length = stats["length"]
        console.print(f"texts {stats['texts']} (labeled {stats['labeled']}, unlabeled {stats['unlabeled']}), length "
                      f"{length.get('min', 0)}-{length.get('max', 0)} characters (median {length.get('median', 0)}), "
                      f"repeated texts {stats['duplicates']['texts']}", highlight=False)
    elif data["kind"] == "tabular":
        console.print(f"rows {stats['rows']}, columns {stats['columns']}, duplicate rows {stats['duplicate_rows']}",
                      highlight=False)
        missing = {k: v for k, v in stats["missing"].items() if v}
        console.print("missing values: " + (", ".join(f"{k} {v}" for k, v in missing.items()) or "none"),
                      highlight=False)
    else:
        sizes = stats["sizes"]
        console.print(f"images {stats['images']} (usable {stats['usable']}), corrupt {len(stats['corrupt'])}, "
                      f"duplicates {stats['duplicates']['files']}, near-duplicate pairs "
                      f"{stats['near_duplicates']['pairs']}" + (
                          f" ({stats['near_duplicates']['files']} image(s) 'prep --dedupe --near' would remove)"
                          if stats["near_duplicates"].get("files") else ""), highlight=False)
        if sizes["width"]:
            console.print(f"width {sizes['width']['min']}-{sizes['width']['max']} (median {sizes['width']['median']}),"
                          f" height {sizes['height']['min']}-{sizes['height']['max']}, aspect median "
                          f"{stats['aspect']['median']}, brightness median {stats['brightness']['median']}, modes "
                          f"{stats['modes']}", highlight=False)
        for item in stats["corrupt"][:10]:
            console.print(f"[red]corrupt:[/] {item['path']}: {item['error']}", highlight=False)
        for item in stats.get("left_out", {}).get("examples", [])[:10]:
            console.print(f"[yellow]left out:[/] {item['path']}: {item['error']}", highlight=False)
    if stats.get("per_class"):
        from rich.table import Table

        detection = data["kind"] == "object-detection"
        table = Table("class", *(("boxes", "images") if detection else ("total",)), "train", "validation", box=None)
        for name, count in stats["per_class"].items():
            extra = (str(stats["images_per_class"].get(name, 0)),) if detection else ()
            table.add_row(name, str(count), *extra, str(stats["per_class_split"]["train"].get(name, 0)),
                          str(stats["per_class_split"]["validation"].get(name, 0)))
        console.print(table)
    elif stats.get("label"):
        label = stats["label"]
        console.print(f"label: min {label['min']}, median {label['median']}, max {label['max']}, mean {label['mean']}",
                      highlight=False)
    _print_check(data["check"])


def _print_detection_stats(stats: dict) -> None:
    per_image = stats["boxes_per_image"]
    console.print(f"images {stats['images']}, boxes {stats['boxes']} (per image: min {per_image.get('min', 0)}, "
                  f"median {per_image.get('median', 0)}, max {per_image.get('max', 0)}), images without boxes "
                  f"{stats['empty_images']}", highlight=False)
    relative = stats["box_sizes"]["relative"]
    if relative.get("median") is not None:
        console.print(f"box size (square root of the share of the image): min {relative['min']}, median "
                      f"{relative['median']}, max {relative['max']}", highlight=False)
    console.print(f"tiny boxes {stats['tiny']['boxes']} ({stats['tiny']['rule']}), clipped to the image "
                  f"{stats['clipped']['boxes']}", highlight=False)
    for item in stats.get("corrupt", [])[:10]:
        console.print(f"[red]corrupt:[/] {item['path']}: {item['error']}", highlight=False)


@app.command("prep")
def prep_command(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION to start from.")],
    drop_columns: Annotated[str | None, typer.Option("--drop-columns", help="Comma-separated columns to drop.")] = None,
    impute: Annotated[str | None, typer.Option("--impute", help="Fill missing values: median, mean, most_frequent "
                                                                "or zero.")] = None,
    dedupe: Annotated[bool, typer.Option("--dedupe", help="Remove duplicate rows / identical image files.")] = False,
    near: Annotated[bool, typer.Option("--near", help="With --dedupe: also near-duplicate images (lists them and "
                                                      "asks first; see --dry-run, --yes).")] = False,
    filter_corrupt: Annotated[bool, typer.Option("--filter-corrupt", help="Drop images that cannot be decoded.")]
    = False,
    resize: Annotated[str | None, typer.Option("--resize", help="Resize images to WIDTHxHEIGHT, e.g. 64x64.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="With --dedupe: list what would be removed, change "
                                                            "nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="With --dedupe --near: remove without asking.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Apply preprocessing steps; each makes a new version with lineage to its parent.

    ``--dedupe --near`` first lists every image it would remove (with the kept image it resembles) and asks; give
    ``--yes`` to skip the question or ``--dry-run`` to only list.
    """
    from modelyard.core.errors import InvalidInput

    steps: list[dict] = []
    if filter_corrupt:
        steps.append({"op": "filter-corrupt"})
    if drop_columns:
        steps.append({"op": "drop-columns", "columns": [c.strip() for c in drop_columns.split(",") if c.strip()]})
    if impute:
        steps.append({"op": "impute", "strategy": impute})
    if dedupe:
        steps.append({"op": "dedupe", **({"near": True} if near else {})})
    if resize:
        width, sep, height = resize.lower().partition("x")
        if not sep or not width.isdigit() or not height.isdigit():
            raise InvalidInput(f"--resize {resize!r}: expected WIDTHxHEIGHT, e.g. 64x64")
        steps.append({"op": "resize", "width": int(width), "height": int(height)})
    if not steps:
        raise InvalidInput("give at least one step: --drop-columns, --impute, --dedupe, --filter-corrupt, --resize")
    if dry_run and not dedupe:
        raise InvalidInput("--dry-run previews --dedupe; give --dedupe (with --near for near-duplicates)")
    with get_client() as client:
        if dry_run or (near and dedupe and not yes):
            if len(steps) > 1:
                raise InvalidInput("preview --dedupe on its own: run the other steps first, or add --yes")
            plan = client.data.duplicates(ref, near=near)
            if as_json and dry_run:
                print_json(plan)
                return
            if not as_json:
                _print_plan(plan)
            if dry_run:
                return
            if not plan["remove"]:
                raise InvalidInput(f"dedupe: {plan['ref']} has no duplicate images")
            if as_json or not _confirm(f"remove these {len(plan['remove'])} image(s) into a new version?"):
                raise InvalidInput("nothing removed: confirm, or give --yes to remove without asking")
        data = client.data.prep(ref, steps)
    if as_json:
        print_json(data)
        return
    for version in data["versions"]:
        step = dict(version["lineage"]["step"])
        console.print(f"{version['lineage']['parent']} -> [bold]{version['ref']}[/] {step.pop('op')} {step or ''}: "
                      f"{version['items']} items", highlight=False)


def _confirm(question: str) -> bool:
    try:
        return typer.confirm(question, default=False)
    except typer.Abort:  # no terminal to answer on (stdin closed)
        return False


def _print_plan(plan: dict) -> None:
    for group in plan["exact"][:200]:
        console.print(f"identical to {group['keep']}: remove {', '.join(group['remove'])}", highlight=False)
    for pair in plan["near"][:500]:
        console.print(f"near-duplicate of {pair['keep']}: remove {pair['remove']} (correlation {pair['correlation']}, "
                      f"largest difference {pair['difference']})", highlight=False)
    shown = min(len(plan["exact"]), 200) + min(len(plan["near"]), 500)
    if shown < len(plan["exact"]) + len(plan["near"]):
        console.print(f"... {len(plan['exact']) + len(plan['near']) - shown} more (see --dry-run --json)")
    console.print(f"{plan['ref']}: {len(plan['remove'])} of {plan['images']} image(s) would be removed"
                  + (f" [dim](near-duplicate rule: {plan['rule']})[/]" if plan["near_included"] else ""),
                  highlight=False)


@app.command("export")
def export_command(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION.")],
    dest: Annotated[Path | None, typer.Argument(help="New or empty output folder (or give -o).")] = None,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="New or empty output folder.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="tables: csv (default) or parquet; image "
                                                             "classification: csv (default) or labelstudio; object "
                                                             "detection: coco (default), voc, yolo or "
                                                             "labelstudio; text classification: csv (default) or "
                                                             "labelstudio.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a version to a folder (table with a _split column, class folders + labels.csv, or an annotation
    format with its images, splits.csv and dataset.json)."""
    from modelyard.core.errors import InvalidInput

    if (dest is None) == (out is None):
        raise InvalidInput("give the output folder once: as DEST or with -o/--out")
    with get_client() as client:
        result = client.data.export(ref, dest or out, fmt=fmt)
    if as_json:
        print_json(result)
        return
    console.print(f"{result['ref']} -> {result['path']} ({result['files']} files)", highlight=False)


@app.command("sample")
def sample_command(
    name: Annotated[str, typer.Argument(help="iris, wine, breast_cancer, digits, diabetes or penguins.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="CSV file to write.")],
) -> None:
    """Write a bundled sample table (from scikit-learn / palmerpenguins, nothing downloaded) as CSV."""
    from modelyard.data.samples import write_tabular_sample

    path = write_tabular_sample(name, out)
    console.print(f"{name} -> {path}", highlight=False)


@app.command("delete")
def delete_command(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION (one version) or NAME (the dataset, every version).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete a version or a whole dataset (refused while an unfinished job uses it). Files shared with other
    versions stay; 'modelyard blobs gc' frees the ones nothing uses any more."""
    if not yes and not as_json and not typer.confirm(f"delete {ref}?", default=False):
        raise typer.Exit(1)
    with get_client() as client:
        result = client.data.delete(ref)
    if as_json:
        print_json(result)
    else:
        versions = ", ".join(f"{result['name']}@{v}" for v in result["versions_deleted"])
        console.print(f"deleted {versions}; run 'modelyard blobs gc' to free files nothing else uses",
                      highlight=False)
