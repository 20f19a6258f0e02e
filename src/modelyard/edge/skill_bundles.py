"""A skill from the market as a signed edge bundle, so a skill reaches devices by the normal deployment path
(canary, health gate, rollback): the bundle holds the skill's folder as it is in the market (``skill.yaml``,
``logic.py`` and its model files) and the agent runs a slot holding ``skill.yaml`` with a ``SkillHost``.

The bundle format keeps files flat (one folder level), so a skill whose folder has subfolders is refused here with
the reason rather than unpacked differently on the device.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from modelyard.core.errors import InvalidInput
from modelyard.core.ids import isoformat, new_id, utcnow
from modelyard.edge.agent.bundle_file import read_manifest, write_bundle
from modelyard.edge.bundles import TARGETS, Bundles, public_key_hex, signing_key
from modelyard.store.schema_edge import edge_bundles

SKIPPED = {"__pycache__", "__init__.py"}


def package_skill(workspace, name: str, version: str | None = None, target: str = "cpu-x86",
                  created_by: str = "") -> dict:
    """Package the market's skill ``name`` (newest version unless ``version``) for ``target``; returns the bundle."""
    from modelyard.edge.skills.manifest import load_manifest
    from modelyard.edge.skills.market import _figures, skill_dir

    if target not in TARGETS or target == "ascend-310":
        runnable = ", ".join(t for t in TARGETS if t != "ascend-310")
        raise InvalidInput(f"target {target!r}: a skill bundle runs on {runnable}")
    folder = skill_dir(workspace.home, name, version)
    manifest = load_manifest(folder)
    files: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name in SKIPPED:
            continue
        if not entry.is_file():
            raise InvalidInput(f"skill {name}: {entry.name}/ is a folder; a skill bundle holds a flat skill folder")
        files[entry.name] = entry
    figures = _figures(workspace.home).get(f"{manifest.name}@{manifest.version}", {})
    bundle_id = new_id("bdl")
    bundle_manifest = {
        "bundle": bundle_id, "model": f"skill:{manifest.name}@{manifest.version}", "skill": manifest.name,
        "skill_version": manifest.version, "target": target, "runtime": TARGETS[target]["runtime"],
        "arch": TARGETS[target]["arch"], "created_at": isoformat(utcnow()),
        "figures": {"final": {"latency_ms_batch1": figures["latency_ms"]}} if figures.get("latency_ms") else {},
    }
    with tempfile.TemporaryDirectory(prefix="skill-bundle-") as tmp:
        out = Path(tmp) / "bundle.myb"
        write_bundle(out, bundle_manifest, files, signing_key(workspace.home))
        info = workspace.blobs.put_file(out)
        signed = read_manifest(out, public_key_hex(workspace.home))
    with workspace.engine.begin() as conn:
        conn.execute(edge_bundles.insert().values(
            id=bundle_id, model_ref=bundle_manifest["model"], target=target, digest=info.digest, size=info.size,
            manifest=signed, created_by=created_by, created_at=utcnow()))
    return Bundles(workspace).get(bundle_id)
