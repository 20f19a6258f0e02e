"""The migration pipeline's phases. Each takes a ``PhaseContext`` and returns its frozen result (``results``;
``to_dict()`` is ``result.json`` of the phase's folder), or ``Skipped`` when it has nothing to do here (no source
folder, a backend this machine lacks)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from modelyard.core.errors import Unavailable
from modelyard.migrate.pipeline.results import (
    AnalyzeResult,
    ApplyResult,
    CompareResult,
    ConvertResult,
    CoverageResult,
    OptimizeResult,
    PackageResult,
    PhaseResult,
    ReportResult,
    Skipped,
)

MAX_FINDINGS_IN_RESULT = 2000


def _spec(ctx):
    return ctx.config.model_spec()


def analyze(ctx) -> AnalyzeResult | Skipped:
    """Scan the source folder for GPU-specific code: findings, readiness score, effort."""
    from modelyard.migrate.code.analyze import analyze_path
    from modelyard.migrate.code.report import render

    cfg = ctx.config
    if cfg.source is None:
        return Skipped("MIGRATION.yaml names no source folder")
    analysis = analyze_path(cfg.resolve(cfg.source), cfg.code_target, progress=ctx.progress)
    folder = ctx.folder("analyze")
    files = {}
    for fmt in ("json", "md", "html"):
        path = folder / f"analysis.{fmt}"
        path.write_text(render(analysis, fmt), encoding="utf-8")
        files[fmt] = str(path)
    findings = [analysis.finding_dict(f) for f in analysis.iter_findings()]
    return AnalyzeResult(summary_counts=analysis.summary(), ready=bool(analysis), files=files,
                         findings=tuple(findings[:MAX_FINDINGS_IN_RESULT]), findings_total=len(findings))


def apply(ctx) -> ApplyResult | Skipped:
    """Rewrite the code into ``apply/migrated`` (the source is never touched); list changes and manual items left."""
    from modelyard.migrate.code.apply import apply_migration

    cfg = ctx.config
    if cfg.source is None:
        return Skipped("MIGRATION.yaml names no source folder")
    if not cfg.apply:
        return Skipped("apply: false in MIGRATION.yaml")
    destination = ctx.folder("apply") / "migrated"
    shutil.rmtree(destination, ignore_errors=True)  # a rerun replaces the earlier copy
    result = apply_migration(cfg.resolve(cfg.source), cfg.code_target, out=destination, progress=ctx.progress)
    after = result.after if result.after is not None else result.before
    manual = [after.finding_dict(f) for f in after.iter_findings() if f.status in ("manual", "unsupported")]
    for item in manual:
        item["owner"] = cfg.owners.owner_of(item["category"])
    return ApplyResult.from_dict({
        **result.to_dict(), "changes": [row.to_dict() for row in result.rows],
        "manual_items": manual[:MAX_FINDINGS_IN_RESULT], "migrated": str(destination),
    })


def convert(ctx) -> ConvertResult | Skipped:
    """Export the model to ONNX, verified to load and run (cached by hash)."""
    from modelyard.migrate.model.passes import convert as convert_model

    spec = _spec(ctx)
    target = "onnx" if spec.source_format == "torch" else ("onnx" if spec.source_format == "onnx" else None)
    if target is None:
        return Skipped("the model is already an OpenVINO IR", {"artifact": str(spec.source().path)})
    if spec.source_format == "onnx":
        return ConvertResult(artifact={"format": "onnx", "path": str(spec.source().path)},
                             note="the model is already ONNX")
    result = convert_model(spec, target, out_dir=ctx.folder("convert"), cache_dir=ctx.cache_dir / "passes",
                           progress=ctx.progress)
    return ConvertResult.from_dict(result.to_dict())


def _converted(ctx) -> str | None:
    """The fp32 ONNX model the convert phase produced (or the source when it needed no conversion)."""
    converted = ctx.results.get("convert")
    if isinstance(converted, ConvertResult):
        return converted.path
    if isinstance(converted, Skipped):
        return converted.details.get("artifact")
    return None


def coverage(ctx) -> CoverageResult | Skipped:
    """Which operators the target runs natively and which fall back."""
    from modelyard.migrate.model.coverage import op_coverage
    from modelyard.runtime.targets import coverage_target

    where = coverage_target(ctx.config.target)
    ctx.progress(0.1, f"coverage on {where}")
    try:
        result = op_coverage(_spec(ctx), where, model_path=_converted(ctx), cache_dir=ctx.cache_dir / "passes")
    except Unavailable as exc:
        return Skipped(str(exc), {"target": where})
    return CoverageResult.from_dict(result.to_dict())


def compare_backend(ctx) -> tuple[str, str | None]:
    """The backend the fp32 compare runs on, and a note when the preferred one is missing here."""
    from modelyard.runtime.targets import check_backend

    cfg = ctx.config
    return check_backend(cfg.compare.backend or cfg.target)


def compare(ctx) -> CompareResult:
    """Precision of the converted fp32 model against the reference: per output, task, layer by layer."""
    from modelyard.migrate.model.compare import compare_models
    from modelyard.migrate.model.compare_report import write_report

    cfg = ctx.config
    backend, note = compare_backend(ctx)
    result = compare_models(
        _spec(ctx), cfg.reference, backend, target_model=_converted(ctx), samples=cfg.compare.samples,
        data=cfg.resolve(cfg.data), seed=cfg.seed, layerwise=cfg.compare.layerwise,
        cache_dir=ctx.cache_dir / "passes", work_dir=ctx.folder("compare") / "exports", progress=ctx.progress,
    )
    data = result.to_dict()
    data["report"] = str(write_report(data, ctx.folder("compare") / "compare.html"))
    return CompareResult.from_dict({**data, "note": note})


def optimize(ctx) -> OptimizeResult:
    """Accuracy-gated search, then the baseline and the chosen configuration benchmarked per batch size."""
    from modelyard.migrate.model.bench import benchmark
    from modelyard.migrate.optimize.search import search
    from modelyard.migrate.optimize.spec import OptimizeSpec

    cfg = ctx.config
    spec = _spec(ctx)
    folder = ctx.folder("optimize")
    options = OptimizeSpec(
        **cfg.optimize.model_dump(), target=cfg.target, max_accuracy_drop=cfg.goals.max_accuracy_drop,
        data=str(cfg.resolve(cfg.data)) if cfg.data else None,
        calib=str(cfg.resolve(cfg.calibration)) if cfg.calibration else None, seed=cfg.seed,
    )
    result = search(spec, options, out_dir=folder, cache_dir=ctx.cache_dir,
                    progress=lambda f, m: ctx.progress(0.8 * f, m))
    data = result.to_dict()
    sizes = list(cfg.benchmark.batch_sizes)
    performance: dict = {"batch_sizes": sizes}
    ctx.progress(0.82, f"baseline at batch sizes {sizes}")
    performance["baseline"] = benchmark(spec, result.baseline["backend"], batch_sizes=sizes, data=cfg.resolve(cfg.data),
                                        seed=cfg.seed, cache_dir=ctx.cache_dir / "passes").to_dict()
    if result.best is not None and result.best_artifact:
        ctx.progress(0.9, f"chosen configuration at batch sizes {sizes}")
        try:
            performance["best"] = benchmark(
                spec, result.best.backend, batch_sizes=sizes, options=result.best.options,
                model_path=result.best_artifact, data=cfg.resolve(cfg.data), seed=cfg.seed, profile=True,
                cache_dir=ctx.cache_dir / "passes",
            ).to_dict()
        except Exception as exc:  # noqa: BLE001 - a batch size the artifact cannot take is reported, not fatal
            performance["best_error"] = f"{type(exc).__name__}: {exc}"
    data["performance"] = performance
    return OptimizeResult.from_dict(data)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package(ctx) -> PackageResult:
    """A hand-over folder: the chosen model and runtime config, the ModelSpec, the migrated code, a manifest."""
    cfg = ctx.config
    folder = ctx.folder("package")
    for child in folder.iterdir():
        if child.name != "result.json":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    optimized = ctx.results.get("optimize")
    best = optimized.best if isinstance(optimized, OptimizeResult) else None
    notes = []
    model_dir = folder / "model"
    model_dir.mkdir()
    if best is not None and best.artifact:
        source = Path(best.artifact).parent
        for item in source.iterdir():
            if item.is_file():
                shutil.copy2(item, model_dir / item.name)
    else:
        fallback = _converted(ctx)
        if fallback:
            shutil.copy2(fallback, model_dir / Path(fallback).name)
            notes.append("no optimised candidate was accepted: the package holds the fp32 ONNX model")
    spec = _spec(ctx)
    (folder / "modelspec.json").write_text(json.dumps(spec.model_dump(mode="json", exclude_none=True), indent=1),
                                           encoding="utf-8")
    applied = ctx.results.get("apply")
    migrated = applied.migrated if isinstance(applied, ApplyResult) else None
    if migrated and Path(migrated).is_dir():
        shutil.copytree(migrated, folder / "code", symlinks=False)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in ("result.json", "MANIFEST.json"))
    manifest = {
        "schema": "modelyard.package/1",
        "name": cfg.name,
        "backend": best.backend if best else None,
        "options": best.options if best else None,
        "files": {str(p.relative_to(folder)): _sha256(p) for p in files},
    }
    (folder / "MANIFEST.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return PackageResult(path=str(folder), files=len(files), manifest=str(folder / "MANIFEST.json"), notes=tuple(notes))


def report(ctx) -> ReportResult:
    """The migration report, test report and acceptance checklist (HTML + JSON + Markdown)."""
    from modelyard.migrate.pipeline.report import write_reports

    return write_reports(ctx.config, ctx.results, ctx.folder("report"))


PHASE_FUNCTIONS = {
    "analyze": analyze, "apply": apply, "convert": convert, "coverage": coverage, "compare": compare,
    "optimize": optimize, "package": package, "report": report,
}


def summarize(phase: str, result: PhaseResult) -> str:
    """One line about a phase's result, for the CLI and ``state.json``."""
    return result.summary()
