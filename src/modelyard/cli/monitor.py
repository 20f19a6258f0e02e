"""``modelyard monitor enable | disable | status | report | feedback | rules | add-rule | delete-rule | alerts |
check``: model monitoring of a service."""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli._common import console, get_client, print_json

app = typer.Typer(no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine output.")]


def _window(value: str | None):
    return None if value is None else int(value) if value.isdigit() else value


def _print_status(data: dict) -> None:
    settings, capture = data["settings"], data["capture"]
    state = "[green]on[/]" if settings["enabled"] else "[magenta]off[/]"
    console.print(f"[bold]{data['service']}[/] capture {state}, rate {settings['sample_rate']:g}, "
                  f"window {settings['window']}, reference {settings['reference']}, "
                  f"retention {settings['retention_days']:g} d", highlight=False)
    console.print(f"captured {data['captured_rows']} rows in {data['segments']} segment(s), "
                  f"{data['feedback_rows']} label(s); dropped (queue full) {int(capture.get('dropped_full', 0))}, "
                  f"capture errors {int(capture.get('errors', 0))}; {data['rules']} rule(s), "
                  f"{data['firing']} alert(s) firing", highlight=False)


@app.command("enable")
def enable(
    name: str,
    sample_rate: Annotated[float | None, typer.Option("--rate", help="Share of requests captured (0-1).")] = None,
    max_record_bytes: Annotated[int | None, typer.Option(help="Larger inputs are kept as a summary.")] = None,
    retention_days: Annotated[float | None, typer.Option("--retention-days", help="Drop older segments.")] = None,
    reference: Annotated[str | None, typer.Option(help="training, a dataset NAME@V, or window:START..END.")] = None,
    window: Annotated[str | None, typer.Option(help="Rows per window (500) or a duration (1h).")] = None,
    min_rows: Annotated[int | None, typer.Option(help="Fewer rows in a window: not judged.")] = None,
    min_effect: Annotated[float | None, typer.Option(help="Smallest effect size that counts as drift.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Turn on capture of a service's traffic (and change its monitoring settings)."""
    changes = {"sample_rate": sample_rate, "max_record_bytes": max_record_bytes, "retention_days": retention_days,
               "reference": reference, "window": _window(window), "min_rows": min_rows, "min_effect": min_effect}
    with get_client() as client:
        data = client.monitoring.enable(name, **{k: v for k, v in changes.items() if v is not None})
    print_json(data) if as_json else _print_status(data)


@app.command("disable")
def disable(name: str, as_json: JsonOpt = False) -> None:
    """Turn off capture (stored segments stay until their retention ends)."""
    with get_client() as client:
        data = client.monitoring.disable(name)
    print_json(data) if as_json else _print_status(data)


@app.command("status")
def status(name: str, as_json: JsonOpt = False) -> None:
    """Capture settings and counters: captured, dropped because the queue was full, stored rows, alerts."""
    with get_client(read_only=True) as client:
        data = client.monitoring.status(name)
    print_json(data) if as_json else _print_status(data)


@app.command("report")
def report(
    name: str,
    window: Annotated[str | None, typer.Option(help="Rows per window or a duration (default: the setting).")] = None,
    windows: Annotated[int, typer.Option(help="How many windows, newest last.")] = 12,
    as_json: JsonOpt = False,
) -> None:
    """Drift per feature (ranked by estimated impact), data quality and performance, real and estimated."""
    from rich.table import Table

    from modelyard.deploy.monitoring.reports import summary_line

    with get_client(read_only=True) as client:
        data = client.monitoring.report(name, _window(window), windows)
    if as_json:
        print_json(data)
        return
    if data.get("message"):
        console.print(f"{name}: {data['message']}", highlight=False)
        return
    console.print(f"[bold]{name}[/] against {data['reference']['source']}", highlight=False)
    for number, judged in enumerate(data["windows"], 1):
        console.print(f"window {number}: {summary_line(judged)}", highlight=False, soft_wrap=True)
    latest = data["latest"]
    table = Table("feature", "test", "effect", "p", "PSI", "impact", "verdict", box=None,
                  title=f"latest window ({latest['rows']} rows)")
    for test in latest["features"] + latest["predictions"] + latest["embeddings"]:
        def num(value, spec=".3f"):
            return "-" if value is None else format(value, spec)

        verdict = "[red]drift[/]" if test["drifted"] else test["status"].replace("_", " ")
        table.add_row(test["feature"], test["method"], f"{num(test['effect'])} {test['effect_name']}",
                      num(test["p_value"], ".2g"), num(test["psi"]), num(test.get("impact")), verdict)
    console.print(table)
    for issue in latest["quality_issues"]:
        console.print(f"[yellow]quality[/] {issue}", highlight=False)


@app.command("feedback")
def feedback(
    name: str,
    request_id: str,
    label: str,
    row: Annotated[int, typer.Option(help="The row in a multi-row request.")] = 0,
) -> None:
    """Send the true label of a prediction (by the x-modelyard-request-id it answered with)."""
    with get_client() as client:
        data = client.monitoring.feedback(name, [{"request_id": request_id, "label": label, "row": row}])
    console.print(f"accepted {data['accepted']} label(s)")


@app.command("rules")
def rules(name: str, as_json: JsonOpt = False) -> None:
    """List the service's alert rules."""
    from rich.table import Table

    with get_client(read_only=True) as client:
        data = client.monitoring.rules(name)
    if as_json:
        print_json(data)
        return
    table = Table("id", "metric", "condition", "window", "webhook", "cooldown", box=None)
    for rule in data["items"]:
        table.add_row(rule["id"], rule["metric"], f"{rule['op']} {rule['threshold']:g}", str(rule["window"] or "-"),
                      rule["webhook"] or "-", f"{rule['cooldown_s']:g} s")
    console.print(table)


@app.command("add-rule")
def add_rule(
    name: str,
    metric: Annotated[str, typer.Argument(help="drift, drift_share, prediction_drift, embedding_drift, "
                                               "estimated_accuracy, accuracy, error_rate, latency_p95_ms, "
                                               "missing_share, out_of_range_share, unseen_share.")],
    op: Annotated[str, typer.Option(help="> or <.")] = ">",
    threshold: Annotated[float, typer.Option(help="Fires when METRIC OP THRESHOLD.")] = 0.0,
    window: Annotated[str | None, typer.Option(help="Rows or a duration (default: the service's).")] = None,
    webhook: Annotated[str | None, typer.Option(help="POST alerts as JSON to this URL.")] = None,
    cooldown_s: Annotated[float, typer.Option(help="Re-send a firing alert at most this often.")] = 3600.0,
    as_json: JsonOpt = False,
) -> None:
    """Add an alert rule on a monitored metric."""
    with get_client() as client:
        rule = client.monitoring.add_rule(name, metric, op, threshold, _window(window), webhook, cooldown_s)
    print_json(rule) if as_json else console.print(f"rule {rule['id']}: {metric} {op} {threshold:g}",
                                                   highlight=False)


@app.command("delete-rule")
def delete_rule(name: str, rule_id: str) -> None:
    """Delete an alert rule."""
    with get_client() as client:
        client.monitoring.delete_rule(name, rule_id)
    console.print(f"deleted rule {rule_id}", highlight=False)


@app.command("alerts")
def alerts(
    name: str,
    state: Annotated[str | None, typer.Option(help="firing or resolved.")] = None,
    limit: Annotated[int, typer.Option(help="Most alerts shown.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Alerts, newest first: metric, feature, effect size, rank by estimated impact, state, deliveries."""
    from rich.table import Table

    with get_client(read_only=True) as client:
        data = client.monitoring.alerts(name, state, limit)
    if as_json:
        print_json(data)
        return
    table = Table("id", "state", "rank", "message", "count", "last", box=None)
    for alert in data["items"]:
        table.add_row(alert["id"], alert["state"], str(alert.get("rank") or "-"), alert.get("message", ""),
                      str(alert["count"]), (alert["last_at"] or "")[:19])
    console.print(table)


@app.command("check")
def check(name: str, as_json: JsonOpt = False) -> None:
    """Evaluate the alert rules on the latest window now."""
    with get_client() as client:
        data = client.monitoring.check(name)
    if as_json:
        print_json(data)
        return
    for alert in data["fired"]:
        console.print(f"[red]fired[/] {alert['message']}", highlight=False)
    console.print(f"{len(data['fired'])} fired, {len(data['firing'])} still firing, "
                  f"{len(data['resolved'])} resolved", highlight=False)
