"""Benchmark: ``migrate analyze`` on torch's own installed source tree (thousands of files).

Reports files/s and lines/s on all cores, peak memory at 25 %, 50 % and 100 % of the tree (each run in a fresh
process, so the figures do not mix), and compares with two anchors measured in the same run:

* floor: a plain ``ast.parse`` of the same Python files on the same number of processes - the cost of parsing
  alone, which any real-parser analysis pays;
* naive: ``grep -rn cuda`` over the same files - what a text search finds, and how many of its lines are not
  GPU-specific sites (comments, docstrings, identifiers) or miss indirect sites.

Run: ``.venv/bin/python benchmarks/analyze_torch_tree.py [--jobs N] [--target any] [--data PROJECT]``

``--data`` analyses another project folder or archive (.zip/.tar.gz/.tgz/.tar) instead of torch's tree. The last
line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path


def torch_dir() -> Path:
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("torch is not installed in this environment")
    return Path(spec.submodule_search_locations[0])


DATA: str | None = None  # --data: a project folder or archive to analyse instead of torch's tree


def source_path() -> Path:
    return Path(DATA).expanduser() if DATA else torch_dir()


def _subset(tree, fraction: float):
    """Every k-th file, so a fraction has the same mix of file sizes as the whole tree."""
    if fraction >= 1:
        return
    step = round(1 / fraction)
    tree.files = tree.files[::step]


def child_analyze(fraction: float, jobs: int, target: str) -> dict:
    from modelyard.migrate.code.analyze import analyze_tree
    from modelyard.migrate.code.sources import open_source

    with open_source(source_path()) as tree:
        _subset(tree, fraction)
        started = time.perf_counter()
        analysis = analyze_tree(tree, target, jobs=jobs)
        seconds = time.perf_counter() - started
    summary = analysis.summary()
    finding_lines = {(f.file, f.line) for f in analysis.iter_findings() if f.file.endswith(".py")}
    return {
        "fraction": fraction,
        "files": summary["files_scanned"],
        "python_files": summary["python_files"],
        "lines": summary["lines"],
        "findings": summary["findings"],
        "parse_errors": sum(1 for r in analysis.files if r.parse_error),
        "seconds": seconds,
        "rss_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "finding_lines": sorted(finding_lines) if fraction >= 1 else None,
    }


def _parse(path: str) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open(path, "rb") as handle:
            data = handle.read()
        with contextlib.suppress(SyntaxError, ValueError):
            ast.parse(data)
    return data.count(b"\n")


def child_ast_floor(jobs: int) -> dict:
    from modelyard.migrate.code.sources import open_source

    with open_source(source_path()) as tree:
        # the same schedule as the analysis: largest first, small chunks, spawned workers
        ordered = sorted((s for s in tree.files if s.kind == "python"), key=lambda s: -s.size)
        paths = [str(s.path) for s in ordered]
        started = time.perf_counter()  # inside the with: an extracted --data archive is deleted on exit
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            lines = sum(pool.imap_unordered(_parse, paths, chunksize=max(1, min(16, len(paths) // (jobs * 32)))))
    return {"files": len(paths), "lines": lines, "seconds": time.perf_counter() - started}


def grep_anchor(finding_lines: set[tuple[str, int]], root: Path) -> dict:
    started = time.perf_counter()
    proc = subprocess.run(["grep", "-rn", "--include=*.py", "cuda", str(root)], capture_output=True, text=True,
                          errors="replace")
    seconds = time.perf_counter() - started
    hits = set()
    comment_lines = 0
    for row in proc.stdout.splitlines():
        path, _, rest = row.partition(":")
        number, _, text = rest.partition(":")
        if not number.isdigit():
            continue
        rel = Path(path).relative_to(root).as_posix()
        hits.add((rel, int(number)))
        comment_lines += text.lstrip().startswith("#")
    return {
        "seconds": seconds,
        "grep_lines": len(hits),
        "grep_lines_without_finding": len(hits - finding_lines),
        "grep_comment_lines": comment_lines,
        "finding_lines_grep_misses": len(finding_lines - hits),
    }


def _run_child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    return json.loads(proc.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--target", default="any")
    parser.add_argument("--data", help="project folder or archive to analyse instead of torch's installed tree")
    parser.add_argument("--child", choices=["analyze", "ast"], help=argparse.SUPPRESS)
    parser.add_argument("--fraction", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global DATA
    DATA = args.data
    data_args = ["--data", args.data] if args.data else []
    if args.child == "analyze":
        print(json.dumps(child_analyze(args.fraction, args.jobs, args.target)))
        return
    if args.child == "ast":
        print(json.dumps(child_ast_floor(args.jobs)))
        return

    print(f"tree: {source_path()}  cores used: {args.jobs}  target: {args.target}")
    runs = []
    for fraction in (0.25, 0.5, 1.0):
        run = _run_child(["--child", "analyze", "--fraction", str(fraction), "--jobs", str(args.jobs),
                          "--target", args.target, *data_args])
        runs.append(run)
        print(
            f"  {int(fraction * 100):3d}% : {run['files']:5d} files ({run['python_files']} .py), "
            f"{run['lines']:8d} lines, "
            f"{run['findings']:6d} findings, {run['parse_errors']} parse errors in {run['seconds']:.2f}s -> "
            f"{run['files'] / run['seconds']:7.0f} files/s, {run['lines'] / run['seconds']:9.0f} lines/s; "
            f"peak RSS main {run['rss_main_mb']:.0f} MiB, worker {run['rss_worker_mb']:.0f} MiB"
        )
    full = runs[-1]
    floor = _run_child(["--child", "ast", "--jobs", str(args.jobs), *data_args])
    print(f"  floor (ast.parse only, same .py files, {args.jobs} processes): {floor['files']} files in "
          f"{floor['seconds']:.2f}s -> {floor['files'] / floor['seconds']:.0f} files/s; "
          f"analysis costs {full['seconds'] / floor['seconds']:.2f}x the bare parse")
    from modelyard.migrate.code.sources import open_source

    with open_source(source_path()) as tree:
        grep = grep_anchor({tuple(x) for x in full["finding_lines"]}, tree.root)
    print(f"  naive (grep -rn cuda *.py): {grep['seconds']:.2f}s, {grep['grep_lines']} lines; "
          f"{grep['grep_lines_without_finding']} of them are not a finding site "
          f"({grep['grep_comment_lines']} are plain comments); grep misses {grep['finding_lines_grep_misses']} "
          f"of the {len(full['finding_lines'])} .py lines with findings (aliases, variables, nccl, pin_memory...)")
    growth = full["rss_main_mb"] - runs[0]["rss_main_mb"]
    print(f"  memory: main RSS {runs[0]['rss_main_mb']:.0f} -> {full['rss_main_mb']:.0f} MiB from 25% to 100% of the "
          f"files (+{growth:.0f} MiB, holding {full['findings']} findings); workers "
          f"{runs[0]['rss_worker_mb']:.0f} -> {full['rss_worker_mb']:.0f} MiB")
    print(json.dumps({"schema": "modelyard.bench-analyze-tree/1", "tree": str(source_path()), "jobs": args.jobs,
                      "target": args.target,
                      "runs": [{k: v for k, v in run.items() if k != "finding_lines"} for run in runs],
                      "floor": floor, "grep": grep}))


if __name__ == "__main__":
    main()
