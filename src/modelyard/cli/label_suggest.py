"""``modelyard label suggest`` and ``modelyard label group``: active learning and auto grouping on an image
dataset version, as jobs waited for with progress."""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli._common import console, get_client, print_json

app = typer.Typer()


@app.command("suggest")
def suggest_command(
    dataset: Annotated[str | None, typer.Argument(help="Image dataset version, NAME@VERSION (or --job).")] = None,
    job: Annotated[str | None, typer.Option("--job", help="A classification labeling job instead of a dataset: its "
                                            "labels train the model and its queue gets uncertainty and hard "
                                            "flags.")] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="margin (default), entropy, kcenter or random.")]
    = "margin",
    batch: Annotated[int, typer.Option("--batch", help="Items to propose.")] = 10,
    control: Annotated[float, typer.Option("--control", help="Share of the batch drawn at random as the control "
                                           "arm.")] = 0.1,
    unlabeled_class: Annotated[str, typer.Option("--unlabeled-class", help="The class folder holding unlabeled "
                                                 "items.")] = "unlabeled",
    after: Annotated[str | None, typer.Option("--after", help="The label.suggest job this round continues (default "
                                              "the latest on this dataset; 'none' starts over).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the control arm and the quick model.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the modelyard.label-suggest/1 result.")] = False,
) -> None:
    """Suggest the next items to label: a quick model scores the unlabeled pool; the strategy's picks plus a random
    control arm, hard examples flagged, and whether the strategy beats random so far."""
    from modelyard.cli.automl import finish, run_job

    spec = {"dataset": dataset, "labeling_job": job, "strategy": strategy, "batch": batch,
            "control_fraction": control,
            "unlabeled_class": unlabeled_class, "after": after, "seed": seed}
    with get_client() as client:
        result = finish(run_job(client, "label.suggest", spec, quiet=as_json))
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    shown = result["strategy"] + ("" if not result["fallback"] else
                                  f" (fell back from {result['requested_strategy']}: losing to random)")
    counts = result["counts"]
    source = result["dataset"] or f"labeling job {result['labeling_job']}"
    console.print(f"[bold]{source}[/] round {result['round']}: {len(result['proposals'])} item(s) by "
                  f"{shown}; pool {counts['pool']}, labeled {counts['labeled']}, held out {counts['heldout']}",
                  highlight=False)
    table = Table("#", "item", "arm", "score", "predicted", "confidence", "hard", box=None)
    for proposal in result["proposals"]:
        score = "-" if proposal["score"] is None else f"{proposal['score']:.3f}"
        sure = "-" if proposal["confidence"] is None else f"{proposal['confidence']:.3f}"
        table.add_row(str(proposal["rank"] + 1), proposal["item"], proposal["arm"], score,
                      proposal["predicted"] or "-", sure, "yes" if proposal["hard"] else "")
    console.print(table)
    gain = result["gain"]
    if gain.get("advantage") is None:
        console.print(f"gain: not measured yet ({gain.get('reason') or 'the control arm is too small'})",
                      highlight=False)
    else:
        console.print(f"gain: strategy {gain['advantage']:+.3f} over random at the control arm's label count; "
                      f"{'fell back to random' if gain['fallback'] else 'strategy kept'}", highlight=False)


@app.command("group")
def group_command(
    dataset: Annotated[str, typer.Argument(help="Image dataset version, NAME@VERSION.")],
    k: Annotated[int, typer.Option("--k", help="Number of groups, 2-200.")] = 10,
    unlabeled_class: Annotated[str, typer.Option("--unlabeled-class", help="The class folder holding unlabeled "
                                                 "items.")] = "unlabeled",
    include_labeled: Annotated[bool, typer.Option("--include-labeled", help="Group every item.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seeds k-means++.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the modelyard.label-groups/1 result.")] = False,
) -> None:
    """Auto grouping: cluster the unlabeled images into k groups so a whole group can be labeled at once."""
    from modelyard.cli.automl import finish, run_job

    spec = {"dataset": dataset, "k": k, "unlabeled_class": unlabeled_class, "include_labeled": include_labeled,
            "seed": seed}
    with get_client() as client:
        result = finish(run_job(client, "label.group", spec, quiet=as_json))
    if as_json:
        print_json(result)
        return
    console.print(f"[bold]{result['dataset']}[/]: {result['k']} groups", highlight=False)
    for group in result["groups"]:
        shown = ", ".join(group["items"][:3]) + (" ..." if group["size"] > 3 else "")
        console.print(f"  group {group['group']}: {group['size']} item(s): {shown}", highlight=False)
