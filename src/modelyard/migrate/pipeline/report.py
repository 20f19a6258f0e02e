"""The migration deliverables (the seed's migration guide, migration and adaptation test report, acceptance report)
as one document, ``modelyard.migration-report/1``, written three ways: a single self-contained HTML file with inline
SVG plots, JSON, and Markdown.

* **Migration report**: readiness summary (score, effort, findings by status and category), the change list of
  the automatic rewrite, the manual items left with owners and effort, operator coverage on the target.
* **Test report**: precision tables (per output, task agreement, the layer-depth error plot and first
  divergence), performance before/after per batch size (latency and throughput charts), the optimisation
  candidates and Pareto front, the chosen configuration and its hot spots, and the environment manifest
  (versions, CPU flags, seeds, input hashes) needed to reproduce it.
* **Acceptance checklist**: each goal of MIGRATION.yaml with the measured value and pass/fail.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from modelyard.migrate.pipeline.config import MigrationConfig

SCHEMA = "modelyard.migration-report/1"
_VERDICTS = ("pass", "warn", "fail")


def _usable(result: dict | None) -> dict:
    return result if result and result.get("skipped") is not True else {}


def migration_section(config: MigrationConfig, results: dict) -> dict:
    analysis = _usable(results.get("analyze"))
    applied = _usable(results.get("apply"))
    coverage = _usable(results.get("coverage"))
    before = analysis.get("summary")
    after = applied.get("after") or before
    if applied:
        manual = applied.get("manual_items", [])
    else:
        manual = [dict(f, owner=config.owners.owner_of(f["category"])) for f in analysis.get("findings", [])
                  if f["status"] in ("manual", "unsupported")]
    effort_low = sum(item["effort"]["hours"][0] for item in manual)
    effort_high = sum(item["effort"]["hours"][1] for item in manual)
    owners: dict[str, int] = {}
    for item in manual:
        owners[item["owner"]] = owners.get(item["owner"], 0) + 1
    return {
        "source": config.source,
        "code_target": config.code_target,
        "readiness": {
            "before": before,
            "after": after if applied else None,
            "score": (after or {}).get("readiness_score"),
            "skipped": (results.get("analyze") or {}).get("reason") if not analysis else None,
        },
        "changes": applied.get("changes", []),
        "files_changed": applied.get("files_changed", []),
        "migrated_code": applied.get("migrated"),
        "manual_items": manual,
        "manual_effort_hours": {"low": round(effort_low, 1), "high": round(effort_high, 1)},
        "manual_items_by_owner": owners,
        "coverage": {
            "target": coverage.get("target"),
            "coverage": coverage.get("coverage"),
            "total_nodes": coverage.get("total_nodes"),
            "native_nodes": coverage.get("native_nodes"),
            "fallback": coverage.get("fallback", []),
            "dynamic": coverage.get("dynamic"),
            "skipped": (results.get("coverage") or {}).get("reason") if not coverage else None,
        },
    }


def test_section(config: MigrationConfig, results: dict) -> dict:
    from modelyard.migrate.model.bench import environment

    compare = _usable(results.get("compare"))
    opt = _usable(results.get("optimize"))
    perf = opt.get("performance", {})
    best = opt.get("best")
    profile = (perf.get("best") or {}).get("profile") or {}
    return {
        "precision": {
            "reference": compare.get("reference"),
            "target": compare.get("target"),
            "samples": compare.get("samples"),
            "verdict": compare.get("verdict"),
            "reasons": compare.get("reasons", []),
            "outputs": compare.get("outputs", []),
            "task": compare.get("task"),
            "noise_floor": compare.get("noise_floor"),
            "first_divergence": compare.get("first_divergence"),
            "layers": [{k: row.get(k) for k in ("index", "name", "target_name", "max_abs_err", "cosine", "kind",
                                                "noise_floor_max_abs_err", "verdict")}
                       for row in compare.get("layers", [])],
            "compare_report": compare.get("report"),
        },
        "task_metrics": {"fp32": compare.get("task"), "chosen": best.get("accuracy") if best else None},
        "performance": {
            "batch_sizes": perf.get("batch_sizes", []),
            "baseline": {"backend": (perf.get("baseline") or {}).get("backend"),
                         "runs": (perf.get("baseline") or {}).get("runs", [])},
            "chosen": {"backend": (perf.get("best") or {}).get("backend"),
                       "runs": (perf.get("best") or {}).get("runs", [])},
            "error": perf.get("best_error"),
        },
        "optimization": {
            "objective": opt.get("objective"),
            "batch_size": opt.get("batch_size"),
            "max_accuracy_drop": opt.get("max_accuracy_drop"),
            "baseline": opt.get("baseline"),
            "candidates": [{k: c.get(k) for k in ("label", "backend", "options", "latency_ms_p50", "speedup",
                                                  "accepted", "reason", "pareto", "fallback_of")}
                           | {"accuracy": {k: c.get("accuracy", {}).get(k)
                                           for k in ("metric", "value", "drop", "cosine")}}
                           for c in opt.get("candidates", [])],
            "stopped": opt.get("stopped"),
            "notes": opt.get("notes", []),
            "skipped": opt.get("skipped", []),
        },
        "chosen_configuration": best,
        "hot_spots": {"method": profile.get("method"), "by_op_type": profile.get("by_op_type", [])[:10],
                      "nodes": profile.get("hot_spots", [])[:10]} if profile else None,
        "environment": environment() | {"seed": config.seed, "input_hashes": _input_hashes(config)},
    }


def _input_hashes(config: MigrationConfig) -> dict:
    from modelyard.migrate.pipeline.state import input_digest

    hashes = {"model": input_digest(config, "model")}
    if config.source:
        hashes["source"] = input_digest(config, "source")
    for name in ("data", "calibration"):
        if getattr(config, name):
            hashes[name] = input_digest(config, name)
    return hashes


def acceptance(config: MigrationConfig, migration: dict, tests: dict) -> list[dict]:
    """One row per goal: ``{"goal", "target", "measured", "passed", "note"}``."""
    goals = config.goals
    best = tests["chosen_configuration"]
    rows: list[dict] = []

    def add(goal: str, target: str, measured, passed: bool | None, note: str = "") -> None:
        rows.append({"goal": goal, "target": target, "measured": measured, "passed": passed, "note": note})

    if best:
        acc = best["accuracy"]
        add("accuracy drop", f"<= {goals.max_accuracy_drop:.2%} ({acc['metric']})", round(acc["drop"], 5),
            acc["drop"] <= goals.max_accuracy_drop + 1e-12,
            f"{acc['metric']} {acc['value']:.4f} on {acc['samples']} samples")
    else:
        add("accuracy drop", f"<= {goals.max_accuracy_drop:.2%}", None, False,
            "no optimised candidate kept the accuracy" if tests["optimization"]["candidates"]
            else "optimize did not run")
    verdict = tests["precision"]["verdict"]
    add("fp32 precision compare", f"verdict {goals.compare_verdict} or better", verdict,
        None if verdict is None else _VERDICTS.index(verdict) <= _VERDICTS.index(goals.compare_verdict))
    if goals.min_speedup is not None:
        speedup = best.get("speedup") if best else None
        reached = speedup is not None and speedup >= goals.min_speedup
        add("speedup vs baseline", f">= {goals.min_speedup:g}x", speedup, reached,
            _speedup_note(tests["optimization"], goals.min_speedup, reached))
    if goals.max_latency_ms is not None:
        latency = best.get("latency_ms_p50") if best else None
        add("latency p50", f"<= {goals.max_latency_ms:g} ms", latency,
            latency is not None and latency <= goals.max_latency_ms,
            f"batch {tests['optimization']['batch_size']}")
    if goals.min_throughput is not None:
        throughput = best.get("throughput") if best else None
        add("throughput", f">= {goals.min_throughput:g}/s", throughput,
            throughput is not None and throughput >= goals.min_throughput)
    if goals.min_readiness is not None:
        score = migration["readiness"]["score"]
        add("code readiness", f">= {goals.min_readiness:g}/100", score,
            score is not None and score >= goals.min_readiness,
            "after the automatic rewrite" if migration["readiness"]["after"] else "")
    if goals.min_coverage is not None:
        cov = migration["coverage"]["coverage"]
        add("operator coverage", f">= {goals.min_coverage:.0%}", cov, cov is not None and cov >= goals.min_coverage,
            migration["coverage"]["target"] or "")
    return rows


def _speedup_note(optimization: dict, goal: float, reached: bool) -> str:
    """Why a speedup goal was missed: faster candidates lost accuracy, or nothing measured is that fast."""
    baseline = (optimization.get("baseline") or {}).get("backend")
    note = f"baseline {baseline}" if baseline else ""
    if reached:
        return note
    faster = [c for c in optimization["candidates"] if not c["accepted"] and (c["speedup"] or 0) >= goal]
    if faster:
        return f"{note}; faster candidates lose accuracy ({faster[0]['label']}: {faster[0]['reason']})"
    return f"{note}; no candidate measured reaches {goal:g}x on this hardware"


def build_report(config: MigrationConfig, results: dict) -> dict:
    """The ``modelyard.migration-report/1`` document from the phases' results."""
    migration = migration_section(config, results)
    tests = test_section(config, results)
    checklist = acceptance(config, migration, tests)
    best = tests["chosen_configuration"]
    accepted = all(row["passed"] is not False for row in checklist)
    headline = {
        "readiness_score": migration["readiness"]["score"],
        "verdict": tests["precision"]["verdict"],
        "speedup": best.get("speedup") if best else None,
        "accuracy": f"{best['accuracy']['metric']} {best['accuracy']['value']:.4f}" if best else None,
        "chosen": f"{best['label']} on {best['backend']}" if best else None,
    }
    notes = list(tests["optimization"]["notes"])
    notes += [n for n in (results.get("package") or {}).get("notes", [])]
    return {
        "schema": SCHEMA,
        "name": config.name,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "target": config.target,
        "reference": config.reference,
        "headline": headline,
        "accepted": accepted,
        "migration_report": migration,
        "test_report": tests,
        "acceptance": checklist,
        "package": (results.get("package") or {}).get("path"),
        "notes": notes,
    }


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_reports(config: MigrationConfig, results: dict, folder: Path) -> dict:
    """Write ``report.html``, ``report.json`` and ``report.md`` into ``folder``; returns the report phase result."""
    from modelyard.migrate.pipeline.render import render_html, render_markdown

    folder.mkdir(parents=True, exist_ok=True)
    document = build_report(config, results)
    files = {"html": str(folder / "report.html"), "json": str(folder / "report.json"), "md": str(folder / "report.md")}
    _atomic_write(Path(files["json"]), json.dumps(document, indent=1, default=str))
    _atomic_write(Path(files["md"]), render_markdown(document))
    _atomic_write(Path(files["html"]), render_html(document))
    return {"files": files, "headline": document["headline"], "accepted": document["accepted"],
            "acceptance": document["acceptance"], "notes": document["notes"]}
