"""``modelyard label create | list | show | items | annotate | propose | assign | review | stats | publish | import |
export``: labeling jobs with a queue, model proposals, team review, publishing as the next dataset version, and
annotation files (COCO, VOC, YOLO, Label Studio, CSV) in and out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from modelyard.cli._common import console, get_client, print_json

app = typer.Typer(no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine output.")]
STATES = "unlabeled, proposed, labeled, in_review, accepted, rejected"


def _split(values: list[str] | None) -> list[str]:
    """``--classes a,b --classes c`` -> ``[a, b, c]``."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _print_job(job: dict) -> None:
    counts = job["counts"]
    done = counts["labeled"] + counts["in_review"] + counts["accepted"]
    source = job["source"].get("dataset") or f"{job['source'].get('files', 0)} uploaded images"
    console.print(f"[bold]{escape(job['name'])}[/] {job['task']} on {escape(str(source))}, owner "
                  f"{escape(job['owner'])}: {done}/{job['items']} labeled", highlight=False)
    console.print("states: " + ", ".join(f"{state} {count}" for state, count in counts.items() if count),
                  highlight=False)
    shown = ", ".join(job["classes"][:20]) + (" ..." if len(job["classes"]) > 20 else "")
    console.print(f"classes ({len(job['classes'])}): {escape(shown)}", highlight=False)
    if job["members"]:
        console.print("team: " + ", ".join(f"{escape(m['principal'])} ({m['role']})" for m in job["members"]),
                      highlight=False)
    for record in job["published"]:
        console.print(f"published {record['ref']} ({record['mode']}, {record['items']} items) by "
                      f"{escape(record['by'])}", highlight=False)


@app.command("create")
def create_command(
    name: Annotated[str, typer.Argument(help="The job's name.")],
    task: Annotated[str, typer.Option("--task", help="classification, multilabel, detection or text (on a "
                                                     "text-classification dataset).")],
    classes: Annotated[list[str] | None, typer.Option("--classes", help="The label set, comma-separated "
                                                                        "(default: the dataset's classes).")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="A dataset version NAME@VERSION to label.")] = None,
    images: Annotated[Path | None, typer.Option("--images", help="Instead, a local folder of images to upload "
                                                                 "and label.")] = None,
    description: Annotated[str, typer.Option("--description", help="Instructions for the labelers.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Open a labeling job on a dataset version or a folder of unlabeled images; you become its owner."""
    with get_client() as client:
        job = client.label.create(name, task, classes=_split(classes) or None, dataset=dataset, images=images,
                                  description=description)
    if as_json:
        print_json(job)
        return
    _print_job(job)


@app.command("list")
def list_command(as_json: JsonOpt = False) -> None:
    """List labeling jobs, newest first."""
    from rich.table import Table

    with get_client(read_only=True) as client:
        data = client.label.list()
    if as_json:
        print_json(data)
        return
    table = Table("name", "task", "source", "items", "labeled", "proposed", "owner", box=None)
    for job in data["items"]:
        counts = job["counts"]
        table.add_row(escape(job["name"]), job["task"], escape(str(job["source"].get("dataset") or "uploaded")),
                      str(job["items"]), str(counts["labeled"] + counts["in_review"] + counts["accepted"]),
                      str(counts["proposed"]), escape(job["owner"]))
    console.print(table)


@app.command("show")
def show_command(name: str, as_json: JsonOpt = False) -> None:
    """Show a job: states, classes, team, publishes."""
    with get_client(read_only=True) as client:
        job = client.label.get(name)
    if as_json:
        print_json(job)
        return
    _print_job(job)


@app.command("items")
def items_command(
    name: str,
    state: Annotated[list[str] | None, typer.Option("--state", help=f"Only these states ({STATES}); repeatable "
                                                                    "or comma-separated.")] = None,
    sort: Annotated[str, typer.Option("--sort", help="position, score, -score, uncertainty, -uncertainty or "
                                                     "hard.")] = "position",
    assignee: Annotated[str | None, typer.Option("--assignee", help="Only items assigned to them.")] = None,
    labeled_by: Annotated[str | None, typer.Option("--labeled-by")] = None,
    hard: Annotated[bool | None, typer.Option("--hard/--not-hard", help="Only hard examples, or only the "
                                                                        "others.")] = None,
    offset: Annotated[int, typer.Option("--offset")] = 0,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """A page of the job's queue, filtered by state and sorted by model score or uncertainty."""
    from rich.table import Table

    with get_client(read_only=True) as client:
        page = client.label.items(name, state=_split(state), sort=sort, assignee=assignee, labeled_by=labeled_by,
                                  hard=hard, offset=offset, limit=limit)
    if as_json:
        print_json(page)
        return
    table = Table("item", "state", "label", "proposal", "score", "hard", "assignee", box=None)
    for item in page["items"]:
        label = item["annotation"] or item["existing"] or {}
        proposal = item["proposal"] or {}
        table.add_row(escape(item["item"]), item["state"], escape(_describe(label)), escape(_describe(proposal)),
                      "" if item["score"] is None else f"{item['score']:.3f}", "yes" if item["hard"] else "",
                      escape(item["assignee"] or ""))
    console.print(table)
    more = f"; next: --offset {page['next_offset']}" if page["next_offset"] is not None else ""
    console.print(f"[dim]{page['offset'] + len(page['items'])} of {page['total']}{more}[/]", highlight=False)


def _describe(labels: dict) -> str:
    if labels.get("boxes"):
        return f"{len(labels['boxes'])} box(es)"
    return ",".join(labels.get("labels", []))


def _parse_box(text: str) -> list:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 5:
        from modelyard.core.errors import InvalidInput

        raise InvalidInput(f"--box {text!r}: expected x1,y1,x2,y2,label in pixels")
    try:
        return [float(p) for p in parts[:4]] + [parts[4]]
    except ValueError:
        from modelyard.core.errors import InvalidInput

        raise InvalidInput(f"--box {text!r}: the coordinates must be numbers") from None


@app.command("annotate")
def annotate_command(
    name: str,
    item: Annotated[str, typer.Argument(help="The item's id (see 'label items').")],
    label: Annotated[list[str] | None, typer.Option("--label", help="A class; repeat for multi-label.")] = None,
    box: Annotated[list[str] | None, typer.Option("--box", help="A box x1,y1,x2,y2,label in pixels; "
                                                                "repeatable.")] = None,
    accept: Annotated[bool, typer.Option("--accept", help="Save the model's proposal as it is.")] = False,
    seconds: Annotated[float | None, typer.Option("--seconds", help="Seconds spent on the item.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Save a label for one item (classes, boxes, or the accepted proposal)."""
    boxes = [_parse_box(b) for b in box or []]
    with get_client() as client:
        saved = client.label.annotate(name, item, labels=label or [], boxes=boxes, seconds=seconds,
                                      accept_proposal=accept)
    if as_json:
        print_json(saved)
        return
    console.print(f"{escape(saved['item'])}: {saved['state']}, {escape(_describe(saved['annotation']))} "
                  f"({saved['source'].replace('_', ' ')})", highlight=False)


@app.command("propose")
def propose_command(
    name: str,
    model: Annotated[str, typer.Option("--model", help="A registered model: N@V, N@alias or N.")],
    backend: Annotated[str, typer.Option("--backend", help="auto or backend:device.")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many items.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the job (default).")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Pre-label the job's unlabeled items with a registered model's proposals and scores (a job)."""
    from modelyard.cli.automl import finish, run_job

    spec = {"job": name, "model": model, "backend": backend, "batch_size": batch_size, "limit": limit}
    with get_client() as client:
        job = run_job(client, "label.propose", spec, quiet=as_json, wait=wait)
    if not wait:
        print_json(job) if as_json else console.print(f"queued {job['id']}", highlight=False)
        return
    result = finish(job)
    if as_json:
        print_json(result)
        return
    console.print(f"{result['model']} proposed labels for {result['proposed']} of {result['items']} item(s) of "
                  f"{escape(result['job'])}; {result['hard']} hard example(s)", highlight=False)


@app.command("assign")
def assign_command(
    name: str,
    labeler: Annotated[list[str] | None, typer.Option("--labeler", help="Add a labeler (repeatable).")] = None,
    reviewer: Annotated[list[str] | None, typer.Option("--reviewer", help="Add a reviewer (repeatable).")] = None,
    remove: Annotated[list[str] | None, typer.Option("--remove", help="Take a member off the team.")] = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="Assign to these labelers (default: the --labeler "
                                                              "ones, else every labeler).")] = None,
    item: Annotated[list[str] | None, typer.Option("--item", help="Assign these items (repeatable).")] = None,
    count: Annotated[int | None, typer.Option("--count", help="Assign this many queue items.")] = None,
    sort: Annotated[str, typer.Option("--sort", help="Queue order to pick in.")] = "position",
    reassign: Annotated[bool, typer.Option("--reassign", help="Also move items assigned to others.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Manage the team (labelers, reviewers) and assign items to labelers round-robin."""
    from modelyard.core.errors import InvalidInput

    labelers, reviewers = _split(labeler), _split(reviewer)
    with get_client() as client:
        job = client.label.team(name, labelers=labelers, reviewers=reviewers)
        for principal in _split(remove):
            job = client.label.remove_member(name, principal)
        assigned = None
        if item or count:
            targets = _split(to) or labelers or [m["principal"] for m in job["members"] if m["role"] == "labeler"]
            if not targets:
                raise InvalidInput("no labelers to assign to: add some with --labeler")
            assigned = client.label.assign(name, targets, items=item or None, count=count, sort=sort,
                                           reassign=reassign)
        elif to:
            raise InvalidInput("--to needs --count or --item: which items to assign")
    if as_json:
        print_json({"schema": "modelyard.labeling-team/1", "job": job, "assignment": assigned})
        return
    _print_job(job)
    if assigned is not None:
        console.print("assigned " + ", ".join(f"{n} to {escape(p)}" for p, n in assigned["assigned"].items()),
                      highlight=False)


@app.command("review")
def review_command(
    name: str,
    item: Annotated[str | None, typer.Argument(help="The item to judge; leave out to draw a sample.")] = None,
    passed: Annotated[bool | None, typer.Option("--pass/--reject", help="The verdict on ITEM.")] = None,
    rating: Annotated[str | None, typer.Option("--rating", help="A, B, C or D.")] = None,
    comment: Annotated[str, typer.Option("--comment")] = "",
    fraction: Annotated[float | None, typer.Option("--fraction", help="Sample this share of labeled items.")] = None,
    count: Annotated[int | None, typer.Option("--count", help="Sample this many labeled items.")] = None,
    labeler: Annotated[str | None, typer.Option("--labeler", help="Sample only this labeler's items.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Draw a sample of labeled items into review (--fraction or --count), or pass/reject one ITEM."""
    from modelyard.core.errors import InvalidInput

    with get_client() as client:
        if item is None:
            result = client.label.sample_for_review(name, labeler=labeler, fraction=fraction, count=count, seed=seed)
        else:
            if passed is None:
                raise InvalidInput("give --pass or --reject for the item")
            result = client.label.review(name, item, "pass" if passed else "reject", rating=rating, comment=comment)
    if as_json:
        print_json(result)
        return
    if item is None:
        console.print(f"{len(result['items'])} item(s) in review:", highlight=False)
        for entry in result["items"]:
            console.print(f"  {escape(entry['item'])} by {escape(entry['labeled_by'] or '')}: "
                          f"{escape(_describe(entry['annotation'] or {}))}", highlight=False)
    else:
        console.print(f"{escape(result['item'])}: {result['state']}", highlight=False)


@app.command("stats")
def stats_command(name: str, as_json: JsonOpt = False) -> None:
    """Per-labeler accuracy and throughput, and whether pre-labeling is helping."""
    from rich.table import Table

    with get_client(read_only=True) as client:
        stats = client.label.stats(name)
    if as_json:
        print_json(stats)
        return
    table = Table("who", "role", "labeled", "items/h", "passed", "rejected", "accuracy", "reviewed", box=None)
    for person in stats["labelers"]:
        table.add_row(escape(person["principal"]), str(person["role"] or ""), str(person["labeled"]),
                      "" if person["items_per_hour"] is None else f"{person['items_per_hour']:.1f}",
                      str(person["passed"]), str(person["rejected"]),
                      "" if person["accuracy"] is None else f"{person['accuracy']:.0%}", str(person["reviewed"]))
    console.print(table)
    pre = stats["prelabeling"]
    ratio = "" if pre["ratio"] is None else f", assisted/manual time {pre['ratio']:.2f}"
    console.print(f"pre-labeling: {pre['verdict']} (manual {pre['manual_labels']} label(s), "
                  f"{pre['manual_seconds_per_label']} s each; assisted {pre['assisted_labels']}, "
                  f"{pre['assisted_seconds_per_label']} s each{ratio})", highlight=False)


@app.command("publish")
def publish_command(
    name: str,
    mode: Annotated[str, typer.Option("--mode", help="overwrite (new labels win) or keep (existing labels "
                                                     "win).")] = "overwrite",
    dataset: Annotated[str | None, typer.Option("--dataset", help="Target dataset (default: the source's).")] = None,
    accepted_only: Annotated[bool, typer.Option("--accepted-only", help="Only labels a reviewer passed.")] = False,
    description: Annotated[str, typer.Option("--description")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Publish the job's labels as the next immutable dataset version, with lineage per item."""
    with get_client() as client:
        version = client.label.publish(name, mode=mode, dataset=dataset, accepted_only=accepted_only,
                                       description=description)
    if as_json:
        print_json(version)
        return
    origins = version["lineage"].get("labeling", {}).get("origins", {})
    console.print(f"published [bold]{version['ref']}[/] ({version['display_version']}): {version['items']} items, "
                  + ", ".join(f"{n} {o}" for o, n in origins.items()), highlight=False)


@app.command("import")
def import_command(
    name: str,
    path: Annotated[Path, typer.Argument(help="An annotation file or folder: COCO or Label Studio .json, a CSV, a "
                                              "VOC or YOLO folder.")],
    fmt: Annotated[str, typer.Option("--format", help="auto, coco, voc, yolo, labelstudio or csv.")] = "auto",
    as_proposals: Annotated[bool, typer.Option("--as-proposals", help="Store them as a model's predictions "
                                                                      "(proposals), not as labels.")] = False,
    model: Annotated[str, typer.Option("--model", help="The name recorded on proposals.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Bring labels made elsewhere into the job, matched by item id (an unknown item or class refuses all)."""
    with get_client() as client:
        result = client.label.import_file(name, path, fmt=fmt, as_proposals=as_proposals, model=model)
    if as_json:
        print_json(result)
        return
    what = "proposals" if as_proposals else "labels"
    console.print(f"imported {result['imported']} {what} into {escape(name)}; skipped {result['skipped']}",
                  highlight=False)


@app.command("export")
def export_command(
    name: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="A new or empty folder.")],
    fmt: Annotated[str, typer.Option("--format", help="coco, voc, yolo, labelstudio or csv.")],
    state: Annotated[list[str] | None, typer.Option("--state", help="Items in these states (default labeled, "
                                                                    "in_review, accepted).")] = None,
    images: Annotated[bool, typer.Option("--images/--no-images", help="Copy the images too.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Write the job's saved labels in an annotation format (with the images), without publishing a version."""
    with get_client(read_only=True) as client:
        summary = client.label.export(name, output, fmt, state=_split(state) or ("labeled", "in_review", "accepted"),
                                      images=images)
    if as_json:
        print_json(summary)
        return
    console.print(f"wrote {summary['items']} item(s) as {summary['format']} to {escape(str(summary['path']))}",
                  highlight=False)
