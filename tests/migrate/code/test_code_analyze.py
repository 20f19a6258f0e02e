"""Analysis: every marked site in the tricky corpus is found, nothing else is; aliases and indirection resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelyard.migrate.code.analyze import SCHEMA, analyze_path
from modelyard.migrate.code.rules import TARGETS

CORPUS = Path(__file__).parent / "code_corpus"
EXAMPLE = Path(__file__).parents[3] / "examples" / "gpu_project"
_MARKER = re.compile(r"expect(-next)?: ([a-z0-9, -]+)$")


def expected_markers(folder: Path) -> set[tuple[str, int, str]]:
    """(file, line, rule) from the ``# expect:`` / ``# expect-next:`` markers of every file in ``folder``."""
    expected = set()
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name == "README.md":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = _MARKER.search(line)
            if match:
                target_line = number + 1 if match.group(1) else number
                for rule in match.group(2).split(","):
                    expected.add((path.relative_to(folder).as_posix(), target_line, rule.strip()))
    return expected


@pytest.fixture(scope="session")
def corpus_analyses():
    return {sub: analyze_path(CORPUS / sub, "any") for sub in ("python", "env")}


@pytest.mark.parametrize("sub", ["python", "env"])
def test_corpus_finds_every_marked_site_and_nothing_else(corpus_analyses, sub):
    found = {(f.file, f.line, f.rule) for f in corpus_analyses[sub].findings}
    expected = expected_markers(CORPUS / sub)
    assert expected, "the corpus has markers"
    assert sorted(expected - found) == [], "missed sites"
    assert sorted(found - expected) == [], "false positives"


def test_negatives_file_gives_no_findings(corpus_analyses):
    assert [f for f in corpus_analyses["python"].findings if f.file == "negatives.py"] == []


def test_alias_resolution_reports_the_real_api(corpus_analyses):
    apis = {(f.line, f.api) for f in corpus_analyses["python"].findings if f.file == "aliases.py"}
    assert (14, "torch.cuda.synchronize") in apis  # tc.synchronize()
    assert (16, "torch.cuda.synchronize") in apis  # sync = torch.cuda.synchronize; sync()
    assert (18, "torch.cuda.amp.autocast") in apis  # from torch.cuda.amp import autocast as ac


def test_indirect_device_string_names_where_it_flows(corpus_analyses):
    finding = next(f for f in corpus_analyses["python"].findings if f.file == "indirection.py" and f.line == 6)
    assert finding.api == "'cuda:0'"
    assert "flows into .to() at line 19" in finding.detail


def test_positional_device_index_is_left_to_a_person(corpus_analyses):
    moved = next(f for f in corpus_analyses["python"].findings if f.snippet.startswith("moved = x.cuda(0)"))
    assert moved.status == "manual"  # .cuda(0) -> .to(device) would drop the index


def test_json_document_has_the_documented_shape(corpus_analyses):
    data = corpus_analyses["python"].to_dict()
    assert data["schema"] == SCHEMA == "modelyard.analysis/1"
    assert set(data) == {"schema", "target", "root", "summary", "files", "findings"}
    assert set(data["summary"]) == {"files_scanned", "python_files", "lines", "findings", "by_category", "by_status",
                                    "auto", "manual", "unsupported", "readiness_score", "effort_hours"}
    assert set(data["files"][0]) == {"path", "findings", "auto", "manual", "unsupported", "parse_error"}
    assert set(data["findings"][0]) == {"file", "line", "column", "end_line", "rule", "api", "category", "status",
                                        "effort", "message", "suggestion", "snippet"}
    assert all(not Path(f["file"]).is_absolute() for f in data["findings"])
    summary = data["summary"]
    assert summary["findings"] == len(data["findings"]) == sum(f["findings"] for f in data["files"])
    assert summary["auto"] + summary["manual"] + summary["unsupported"] <= summary["findings"]
    assert 0 <= summary["readiness_score"] <= 100
    assert 0 < summary["effort_hours"]["low"] <= summary["effort_hours"]["high"]


def test_score_and_effort_follow_the_documented_formula(tmp_path):
    (tmp_path / "a.py").write_text("import torch\n" + "torch.cuda.get_device_capability()\n" * 3, encoding="utf-8")
    summary = analyze_path(tmp_path, "any").summary()
    # cuda-device-capability: manual, medium (0.5-2 h); 3 sites -> hours * (1 + 0.25 * 2); penalty 3 * 1.5
    assert summary["effort_hours"] == {"low": 0.8, "high": 3.0}
    k = 10 + 4 / 250
    assert summary["readiness_score"] == round(100 * k / (k + 4.5))
    (tmp_path / "a.py").write_text("import torch\nx = 1\n", encoding="utf-8")
    assert analyze_path(tmp_path, "any").summary()["readiness_score"] == 100


def test_status_depends_on_the_target(tmp_path):
    (tmp_path / "t.py").write_text("import torch\nx = torch.zeros(2).cuda()\ny = x.double()\n", encoding="utf-8")
    statuses = {t: {f.rule: f.status for f in analyze_path(tmp_path, t).findings} for t in TARGETS}
    assert statuses["any"] == {"cuda-method": "auto", "float64-use": "manual"}
    assert statuses["rocm"] == {"cuda-method": "supported"}
    assert statuses["mps"]["float64-use"] == "unsupported"
    assert "float64-use" not in statuses["cpu"]  # float64 is fine on the CPU: the rule does not apply


def test_bool_and_fail_levels(corpus_analyses):
    analysis = corpus_analyses["python"]
    assert not analysis  # manual sites remain
    assert analysis.fails("manual") and analysis.fails("unsupported")
    assert "readiness" in str(analysis)


def test_extra_rule_file_adds_a_rule_without_code(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "house.yaml").write_text(
        "family: house\nrules:\n"
        "  - id: no-legacy-helper\n    category: house\n    match: {call: mylib.gpu.*}\n"
        "    status: {any: manual}\n    effort: {level: low, hours: [0.5, 1]}\n"
        "    message: '{api} is our GPU-only helper.'\n    suggestion: Use mylib.device instead.\n",
        encoding="utf-8")
    (tmp_path / "code.py").write_text("import mylib.gpu as g\ng.warmup()\n", encoding="utf-8")
    analysis = analyze_path(tmp_path / "code.py", "any", extra_rules=(str(rules),))
    [finding] = analysis.findings
    assert (finding.rule, finding.api, finding.line) == ("no-legacy-helper", "mylib.gpu.warmup", 2)
    assert analysis.finding_dict(finding)["message"] == "mylib.gpu.warmup is our GPU-only helper."


def test_example_project_findings_are_exactly_the_gpu_sites():
    analysis = analyze_path(EXAMPLE, "any")
    got = sorted((f.file, f.rule, f.snippet) for f in analysis.findings)
    expected = [
        ("Dockerfile", "cuda-base-image", "FROM nvidia/cuda"),
        ("Dockerfile", "nccl-env", "ENV NCCL_DEBUG=WARN"),
        ("benchmark.py", "cuda-device-string", 'device="cuda"'),
        ("benchmark.py", "cuda-memory-counter", "torch.cuda.max_memory_allocated()"),
        ("benchmark.py", "cuda-memory-management", "torch.cuda.empty_cache()"),
        ("benchmark.py", "cuda-memory-management", "torch.cuda.reset_peak_memory_stats()"),
        ("benchmark.py", "cuda-method", "labels = torch.randint(0, 8, (args.batch_size,)).cuda()"),
        ("benchmark.py", "cuda-method", "model = TinyTransformer().cuda()"),
        ("benchmark.py", "cuda-synchronize", "torch.cuda.synchronize()"),
        ("benchmark.py", "cuda-synchronize", "torch.cuda.synchronize()"),
        ("benchmark.py", "cudnn-flag", "torch.backends.cudnn.benchmark = True"),
        ("csrc/fused_bias_gelu_kernel.cu", "cuda-source-file", "// y = gelu"),
        ("data.py", "pin-memory", "pin_memory=True"),
        ("fused_ops.py", "cuda-extension-build", "os.path.join(_HERE, \"csrc\", \"fused_bias_gelu_kernel.cu\")"),
        ("fused_ops.py", "cuda-is-available", "torch.cuda.is_available()"),
        ("fused_ops.py", "cuda-is-cuda", "if x.is_cuda"),
        ("fused_ops.py", "jit-script", "@torch.jit.script"),
        ("model.py", "fp16-overflow-op", "torch.baddbmm("),
        ("requirements.txt", "cuda-wheel-index", "download.pytorch.org/whl/cu121"),
        ("requirements.txt", "cuda-wheel-pin", "torch==2.3.1+cu121"),
        ("requirements.txt", "nvidia-python-package", "nvidia-nccl-cu12"),
        ("scripts/launch_ddp.sh", "cuda-visible-devices", "CUDA_VISIBLE_DEVICES="),
        ("scripts/launch_ddp.sh", "distributed-launcher", "torchrun"),
        ("scripts/launch_ddp.sh", "nccl-env", "export NCCL_DEBUG=INFO"),
        ("scripts/launch_ddp.sh", "nccl-env", "export NCCL_IB_DISABLE=1"),
        ("scripts/launch_ddp.sh", "nvidia-smi", "nvidia-smi --query-gpu"),
        ("setup.py", "cuda-extension-build", "CUDAExtension("),
        ("train.py", "amp-cuda-autocast", "with autocast(enabled=use_amp):"),
        ("train.py", "amp-cuda-grad-scaler", "scaler = GradScaler(enabled=use_amp)"),
        ("train.py", "amp-cuda-import", "from torch.cuda.amp import GradScaler, autocast"),
        ("train.py", "cuda-device-check", 'use_amp = args.amp and device.type == "cuda"'),
        ("train.py", "cuda-device-check", 'if device.type == "cuda" else'),
        ("train.py", "cuda-device-count", "torch.cuda.device_count() > 1"),
        ("train.py", "cuda-device-string", 'parser.add_argument("--device", default="cuda"'),
        ("train.py", "cuda-manual-seed", "torch.cuda.manual_seed_all(seed)"),
        ("train.py", "cuda-memory-counter", "torch.cuda.max_memory_allocated()"),
        ("train.py", "cuda-method", "model = DDP(model.cuda()"),
        ("train.py", "cuda-set-device", "torch.cuda.set_device(local_rank)"),
        ("train.py", "cudnn-flag", "torch.backends.cudnn.benchmark = True"),
        ("train.py", "data-parallel", "torch.nn.DataParallel(model)"),
        ("train.py", "float64-use", ".double()"),
        ("train.py", "nccl-backend", 'dist.init_process_group(backend="nccl")'),
        ("train.py", "tf32-flag", "torch.backends.cuda.matmul.allow_tf32 = True"),
    ]
    assert len(got) == len(expected), [g[:2] for g in got]
    unmatched = list(got)
    for file, rule, fragment in expected:
        hit = next((g for g in unmatched if g[0] == file and g[1] == rule and fragment in g[2]), None)
        assert hit is not None, (file, rule, fragment)
        unmatched.remove(hit)
    assert unmatched == []


def test_parallel_scan_gives_the_same_result(monkeypatch):
    import modelyard.migrate.code.analyze as analyze_module

    serial = analyze_path(CORPUS, "any", jobs=1)
    monkeypatch.setattr(analyze_module, "PARALLEL_MIN_FILES", 2)
    parallel = analyze_path(CORPUS, "any", jobs=2)
    assert parallel.to_dict() == serial.to_dict()


def test_cancel_stops_the_scan(tmp_path):
    from modelyard.core.errors import Conflict

    for i in range(60):
        (tmp_path / f"m{i}.py").write_text("import torch\ntorch.cuda.synchronize()\n", encoding="utf-8")
    seen = []
    with pytest.raises(Conflict, match="cancelled"):
        analyze_path(tmp_path, "any", progress=lambda f, m: seen.append(f), cancelled=lambda: len(seen) > 2)
