"""The skill market: the built-in skills plus the skills users publish, with their manifests, model hashes, sizes
and measured figures (latency on this device, self-check result).

Published skills live in ``<home>/skills/<name>/<version>/`` (``skill.yaml`` + ``logic.py``, copied atomically);
measured figures in ``<home>/skills/figures.json``. A published skill may not take a built-in skill's name.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from modelyard.core.errors import Conflict, InvalidInput, ModelyardError, NotFound
from modelyard.edge.skills.builtin.registry import builtin_dirs
from modelyard.edge.skills.manifest import LOGIC_FILE, MANIFEST_FILE, load_manifest

SCHEMA = "modelyard.skill/1"
SAMPLE_TEXT = "The new release works great and the whole team is happy with the faster edge devices."


def market_dir(home: str | Path) -> Path:
    return Path(home) / "skills"


def _published(home) -> dict[str, list[Path]]:
    root = market_dir(home)
    found: dict[str, list[Path]] = {}
    if root.is_dir():
        for folder in sorted(root.glob(f"*/*/{MANIFEST_FILE}")):
            found.setdefault(folder.parent.parent.name, []).append(folder.parent)
    return found


def _version_key(path: Path) -> tuple:
    return tuple(int(part) for part in path.name.split("."))


def skill_dir(home, name: str, version: str | None = None) -> Path:
    """The folder of a built-in skill or of a published one (newest version unless ``version``)."""
    builtins = builtin_dirs()
    if name in builtins:
        folder = builtins[name]
        if version and load_manifest(folder).version != version:
            raise NotFound(f"built-in skill {name} has no version {version}")
        return folder
    versions = _published(home).get(name)
    if not versions:
        raise NotFound(f"no skill {name!r} in the market (modelyard skills list)")
    if version:
        for folder in versions:
            if folder.name == version:
                return folder
        raise NotFound(f"skill {name} has no version {version} ({', '.join(v.name for v in versions)})")
    return max(versions, key=_version_key)


def _figures(home) -> dict:
    path = market_dir(home) / "figures.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def describe(home, name: str, version: str | None = None, *, verify_models: bool = True) -> dict:
    """Everything the market shows about one skill (``modelyard.skill/1``)."""
    folder = skill_dir(home, name, version)
    manifest = load_manifest(folder)
    models, model_bytes = [], 0
    for ref in manifest.models:
        entry = ref.model_dump(mode="json", exclude_none=True)
        if verify_models and ref.package:
            try:
                report = ref.verify()
                entry.update(verified=True, bytes=report["bytes"], installed_version=report["package_version"])
                model_bytes += report["bytes"]
            except ModelyardError as exc:
                entry.update(verified=False, problem=str(exc))
        models.append(entry)
    manifest_dict = manifest.to_dict()
    return {"schema": SCHEMA, "name": manifest.name, "version": manifest.version,
            "description": manifest.description, "builtin": name in builtin_dirs(),
            "inputs": manifest.inputs, "outputs": manifest.outputs, "config": manifest_dict["config"],
            "models": models, "packages": manifest.packages, "license": manifest.license,
            "offline": manifest.offline, "size_bytes": _folder_bytes(folder) + model_bytes,
            "figures": _figures(home).get(f"{manifest.name}@{manifest.version}")}


def list_skills(home) -> list[dict]:
    """One summary row per skill (newest version), built-in first."""
    names = list(builtin_dirs()) + sorted(n for n in _published(home) if n not in builtin_dirs())
    rows = []
    for name in names:
        info = describe(home, name, verify_models=False)
        figures = info["figures"] or {}
        rows.append({key: info[key] for key in ("name", "version", "description", "builtin", "inputs", "license",
                                                "offline")}
                    | {"latency_ms": figures.get("latency_ms"), "self_check": figures.get("self_check")})
    return rows


def sample_item(manifest) -> dict:
    """A representative input for the skill's first input kind (for latency figures and smoke calls)."""
    import numpy as np

    from modelyard.edge.skills.media import render_text, synthetic_frame

    kind = manifest.inputs[0]
    if kind == "text":
        return {"text": SAMPLE_TEXT}
    if kind in ("image", "video"):
        if manifest.name == "ocr":
            return {"frame": render_text("Sample 42 ready")}
        return {"frame": synthetic_frame(0, 640, 360)}
    from modelyard.edge.skills.builtin.registry import load_builtin

    tts = load_builtin("speech-synthesis")
    audio, rate = tts.synthesize("please open the front door")
    return {"audio": np.asarray(audio), "sample_rate": rate}


def measure(home, name: str, *, repeats: int = 5) -> dict:
    """Run the skill's self-check and time ``process`` on a sample input in this process; store the figures."""
    from modelyard.edge.skills.manifest import load_logic

    folder = skill_dir(home, name)
    manifest = load_manifest(folder)
    if name in builtin_dirs():
        from modelyard.edge.skills.builtin.registry import load_builtin

        logic = load_builtin(name)
    else:
        logic = load_logic(folder, manifest)
        logic.setup({})
    check = getattr(logic, "self_check", None)
    started = time.perf_counter()
    result = check() if callable(check) else {"ok": None, "reason": "the skill defines no self_check()"}
    check_s = time.perf_counter() - started
    item = sample_item(manifest)
    channel = {"id": "measure", "config": {}}
    logic.process(item, channel)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        logic.process(item, channel)
        times.append((time.perf_counter() - started) * 1000)
    figures = {"latency_ms": round(statistics.median(times), 2), "self_check": bool(result.get("ok")),
               "self_check_detail": result, "self_check_s": round(check_s, 2), "measured_at": time.time(),
               "device": f"{os.cpu_count()} CPU"}
    all_figures = _figures(home)
    all_figures[f"{manifest.name}@{manifest.version}"] = figures
    _write_json_atomic(market_dir(home) / "figures.json", all_figures)
    return figures


def publish(home, source: str | Path) -> dict:
    """Copy a skill folder (``skill.yaml`` + ``logic.py``) into the market after validating it."""
    source = Path(source)
    manifest = load_manifest(source)
    if manifest.name in builtin_dirs():
        raise Conflict(f"{manifest.name} is a built-in skill's name; choose another")
    target = market_dir(home) / manifest.name / manifest.version
    if target.exists():
        raise Conflict(f"skill {manifest.name} {manifest.version} is already published; raise the version")
    for ref in manifest.models:
        if ref.package and ref.file:
            ref.verify()
    market_dir(home).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=market_dir(home)))
    try:
        for entry in source.iterdir():
            if entry.name == "__pycache__":
                continue
            if entry.is_dir():
                shutil.copytree(entry, staging / entry.name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(entry, staging / entry.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return describe(home, manifest.name, manifest.version)


def install(home, name: str, destination: str | Path, version: str | None = None) -> Path:
    """Copy a skill package into a device's skills folder (``destination/<name>``); returns that folder."""
    folder = skill_dir(home, name, version)
    target = Path(destination) / name
    if target.exists():
        raise Conflict(f"{target} exists; remove it first")
    for required in (MANIFEST_FILE, LOGIC_FILE):
        if not (folder / required).is_file():
            raise InvalidInput(f"{folder}: missing {required}")
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    return target


TEMPLATE_LOGIC = '''"""Code-free skill from the {rule} template (modelyard.edge.skills.rules)."""

from pathlib import Path

from modelyard.edge.skills.rules import RuleSkill

_skill = RuleSkill("{rule}", Path(__file__).parent / "model.onnx", ({width}, {height}))
setup, infer_batch, process, self_check = _skill.setup, _skill.infer_batch, _skill.process, _skill.self_check
'''


def publish_template(home, template: str, name: str, model_file: str | Path, *, model_ref: str, version: str = "1.0",
                     input_size: tuple[int, int] = (320, 320), description: str = "") -> dict:
    """Publish a code-free skill: a registered detector or, for ``classifier-seen``, an image classifier (its ONNX
    file, pinned by sha256) plus a rule template."""
    import hashlib

    import yaml

    from modelyard.edge.skills.rules import (
        CHANNEL_SCHEMAS,
        CLASSIFIER_TEMPLATES,
        COMMON_SCHEMA,
        TEMPLATES,
        classifier_io,
    )

    if template not in TEMPLATES:
        raise InvalidInput(f"unknown template {template!r} (one of {', '.join(TEMPLATES)})")
    model_file = Path(model_file)
    classifier = template in CLASSIFIER_TEMPLATES
    if model_file.suffix != ".onnx" or not model_file.is_file():
        raise InvalidInput(f"{model_ref}: a template skill needs an ONNX "
                           + ("image classifier" if classifier else "detector (boxes, scores, classes)"))
    if classifier:
        try:
            classifier_io(model_file)
        except ValueError as exc:
            raise InvalidInput(f"{model_ref}: {exc}") from None
    manifest = {
        "name": name, "version": version,
        "description": description or f"{template} with {model_ref} (code-free template skill)",
        "inputs": ["video", "image"], "outputs": {"type": "object", "required": ["rule"]},
        "config": {"global": {"type": "object", "properties": {"min_score": COMMON_SCHEMA["min_score"]}},
                   "channel": {"type": "object", "additionalProperties": False,
                               "properties": {**COMMON_SCHEMA, **CHANNEL_SCHEMAS[template]}}},
        "models": [{"name": "classifier" if classifier else "detector", "registry": model_ref, "file": "model.onnx",
                    "sha256": hashlib.sha256(model_file.read_bytes()).hexdigest()}],
        "license": "proprietary", "offline": True, "batch": True,
    }
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy2(model_file, Path(folder) / "model.onnx")
        Path(folder, MANIFEST_FILE).write_text(yaml.safe_dump(manifest, sort_keys=False))
        Path(folder, LOGIC_FILE).write_text(TEMPLATE_LOGIC.format(rule=template, width=input_size[0],
                                                                  height=input_size[1]))
        return publish(home, folder)
