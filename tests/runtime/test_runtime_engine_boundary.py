"""A backend owns its engine (STYLE.md rule 13): nothing outside ``runtime/`` reaches into an ONNX Runtime session or
an OpenVINO compiled model. An AST scan, so it also sees imports inside functions.

Why a scan and not only an import-linter contract: the breach this guards against was never an import, it was
``runner.session = ...`` / ``runner.compiled.create_infer_request()`` from the benchmark, reaching through a Runner
that runtime had handed out. So the scan checks two things:

1. Engine packages (``onnxruntime``, ``openvino``, ``nncf``) are imported only in ``runtime/`` and in the modules
   listed in ``ENGINE_IMPORTS`` with the reason each needs the engine itself (converters and quantizers write
   artifacts; they load nothing to run).
2. Outside ``runtime/`` a runner (any name ending in ``runner``) is used only through the public Runner API, and
   the engines' run-time entry points (``InferenceSession``, ``compile_model``, ...) appear only where
   ``ENGINE_IMPORTS`` allows them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import modelyard

PACKAGE = Path(modelyard.__file__).parent
ENGINES = ("onnxruntime", "openvino", "nncf")
# module (relative to the package) -> (engine entry points it may name, why it needs the engine at all)
ENGINE_IMPORTS: dict[str, tuple[frozenset[str], str]] = {
    "migrate/model/passes/onnx.py": (frozenset({"InferenceSession"}), "ONNX Runtime's offline optimiser, float16 "
                                     "converter and quantizers write converted models (an InferenceSession with "
                                     "optimized_model_filepath is how ORT saves an optimised graph)"),
    "migrate/model/passes/openvino.py": (frozenset(), "ov.convert_model / save_model and NNCF write IRs"),
    "registry/signature.py": (frozenset(), "reads an IR's declared inputs and outputs (no compiled model)"),
    # skill logic runs on a device that installs the skills extra: onnxruntime without the onnx package, which the
    # runtime's ORT backend needs to parse graphs; both only read declared inputs/outputs or run a tiny fixed model
    "edge/skills/rules.py": (frozenset({"InferenceSession"}), "reads a classifier's declared input and output names "
                             "on a device (no onnx package there) before loading it through the runtime"),
    "edge/skills/builtin/speech_recognition/logic.py": (frozenset({"InferenceSession"}), "runs silero-vad, a "
                                                        "stateful 32 ms-step ONNX model, on a device with "
                                                        "onnxruntime but no onnx package"),
    "train/latency.py": (frozenset({"InferenceSession"}), "AutoML times in-memory ONNX candidates (bytes with "
                         "ai.onnx.ml operators) on a one-thread ORT session; runtime runners load files"),
}
ENGINE_ENTRY_POINTS = {"InferenceSession", "compile_model", "create_infer_request", "end_profiling", "query_model",
                       "get_profiling_info"}
RUNNER_API = {"infer", "layers", "intermediates", "layer_calls", "replay", "check_feeds", "profile", "close",
              "on_close", "info", "inputs", "output_names", "backend_name", "last_latency_s", "options", "concurrent"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith("runtime/"):
            yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)


def _imported(node) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module]
    return []


def _owner_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def scan() -> list[str]:
    problems = []
    for rel, tree in _modules():
        allowed_names, _ = ENGINE_IMPORTS.get(rel, (frozenset(), ""))
        for node in ast.walk(tree):
            for module in _imported(node):
                if module.split(".")[0] in ENGINES and rel not in ENGINE_IMPORTS:
                    problems.append(f"{rel}:{node.lineno} imports {module} outside runtime/")
            if isinstance(node, ast.Attribute):
                if node.attr in ENGINE_ENTRY_POINTS and node.attr not in allowed_names:
                    problems.append(f"{rel}:{node.lineno} calls the engine's {node.attr} outside runtime/")
                owner = _owner_name(node.value)
                if owner.lower().endswith("runner") and node.attr not in RUNNER_API:
                    problems.append(f"{rel}:{node.lineno} reaches into {owner}.{node.attr} (not the Runner API)")
    return problems


def test_nothing_outside_runtime_touches_an_engine():
    assert scan() == []


def test_the_scan_catches_what_the_benchmark_used_to_do(tmp_path, monkeypatch):
    """The scan is not vacuous: the old bench code, dropped into the package, is reported on each count."""
    old = tmp_path / "migrate" / "model" / "old_bench.py"
    old.parent.mkdir(parents=True)
    old.write_text(
        "def rebuild(runner, so):\n"
        "    import onnxruntime as ort\n"
        "    runner.session = ort.InferenceSession(runner.model.SerializeToString(), sess_options=so)\n"
        "    request = runner.compiled.create_infer_request()\n"
    )
    monkeypatch.setitem(globals(), "PACKAGE", tmp_path)
    found = scan()
    assert any("imports onnxruntime" in p for p in found)
    assert any("InferenceSession" in p for p in found)
    assert any("runner.session" in p for p in found) and any("runner.compiled" in p for p in found)
    assert any("runner.model" in p for p in found) and any("create_infer_request" in p for p in found)


def test_every_allowed_module_exists_and_imports_an_engine():
    modules = dict(_modules())
    for rel in ENGINE_IMPORTS:
        assert rel in modules, f"{rel} is allowed to import an engine but does not exist"
        assert any(m.split(".")[0] in ENGINES for n in ast.walk(modules[rel]) for m in _imported(n)), rel
