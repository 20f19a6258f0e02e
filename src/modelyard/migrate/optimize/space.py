"""The optimiser's search space: backend x conversion passes x runtime options for one target device.

A *variant* fixes the numerics (backend, pass chain, precision hint); a *candidate* is a variant plus runtime
options (threads, graph optimisation level, execution mode, performance hint), which change speed but not results.
So each variant is accuracy-gated once, and each candidate benchmarked.

Space for ``--target cpu`` (the variants, in the order a search tries them: likely fastest first)::

    openvino:cpu    nncf-int8 (performance | mixed)      precision f32 / bf16 (bf16 only where the CPU has it)
    openvino:cpu    fp32 IR                               precision bf16 / f16 (if the CPU has it) / f32
    onnxruntime:cpu int8-static (per-channel | per-tensor | Add/Mul/Softmax kept float)
    onnxruntime:cpu int8-dynamic (per-tensor | per-channel)
    onnxruntime:cpu fp32

Runtime options per backend (the first value is the default every variant is first measured with)::

    onnxruntime  threads all | half, graph_optimization all | extended, execution_mode sequential | parallel
    openvino     threads all | half, performance_hint latency | throughput

Backends this machine lacks are skipped with their reason, never run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field

from modelyard.core.errors import InvalidInput

KEEP_FLOAT_OP_TYPES = ["Add", "Mul", "Softmax", "Sigmoid"]


@dataclass(frozen=True)
class Variant:
    """A backend and a pass chain (after the source became ONNX), plus the OpenVINO precision hint.

    Args:
        backend: ``backend:device``.
        passes: ``((name, config), ...)`` applied in order to the ONNX model.
        precision: OpenVINO inference precision hint (``f32``/``bf16``/``f16``), ``None`` elsewhere.
        label: short human name (``openvino int8 (nncf performance) bf16``).
        numeric_class: ``fp32``, ``bf16``, ``fp16`` or ``int8``: picks the tensor threshold preset.
        parent: label of the variant this one falls back from (an INT8 variant with layers kept in float).
    """

    backend: str
    passes: tuple[tuple[str, tuple[tuple[str, object], ...]], ...]
    precision: str | None
    label: str
    numeric_class: str
    parent: str | None = None

    @staticmethod
    def make(backend: str, passes: list[tuple[str, dict]], precision: str | None, label: str, numeric_class: str,
             parent: str | None = None) -> Variant:
        frozen = tuple((name, tuple(sorted((k, _freeze(v)) for k, v in cfg.items()))) for name, cfg in passes)
        return Variant(backend, frozen, precision, label, numeric_class, parent)

    def pass_list(self) -> list[tuple[str, dict]]:
        return [(name, {k: _thaw(v) for k, v in cfg}) for name, cfg in self.passes]

    def passes_json(self) -> list[dict]:
        return [{"name": name, "config": cfg} for name, cfg in self.pass_list()]

    def key(self) -> str:
        """The variant's cache key: its backend, precision and each pass's name and config ``content_hash()`` (so
        where the calibration data lies does not count; its content is in the measurement key)."""
        from modelyard.migrate.model.passes import get_pass

        passes = [[name, get_pass(name).validate_config(cfg).content_hash()] for name, cfg in self.pass_list()]
        data = {"backend": self.backend, "passes": passes, "precision": self.precision}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    @property
    def is_int8(self) -> bool:
        return self.numeric_class == "int8"


@dataclass(frozen=True)
class Candidate:
    """A variant with runtime options: what gets benchmarked."""

    variant: Variant
    options: tuple[tuple[str, object], ...] = ()

    @property
    def option_dict(self) -> dict:
        opts = {k: v for k, v in self.options if v is not None}  # None: the runtime's default (all cores)
        if self.variant.precision is not None:
            opts["precision"] = self.variant.precision
        return opts

    def key(self) -> str:
        data = {"variant": self.variant.key(), "options": self.option_dict}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options)
        return self.variant.label + (f" [{opts}]" if opts else "")


def _freeze(value):
    return tuple(value) if isinstance(value, list) else value


def _thaw(value):
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Space:
    """Variants to try, option grids per backend family, and what was skipped with why."""

    target: str
    baseline: str
    variants: tuple[Variant, ...]
    option_grids: dict = field(default_factory=dict)
    skipped: tuple[dict, ...] = ()

    def default_candidate(self, variant: Variant) -> Candidate:
        grid = self.option_grids.get(variant.backend.partition(":")[0], {})
        return Candidate(variant, tuple((k, values[0]) for k, values in grid.items()))

    def candidates(self, variant: Variant) -> list[Candidate]:
        """Every option combination for ``variant``, the default first."""
        grid = self.option_grids.get(variant.backend.partition(":")[0], {})
        if not grid:
            return [Candidate(variant)]
        keys = list(grid)
        return [Candidate(variant, tuple(zip(keys, combo, strict=True))) for combo in itertools.product(*grid.values())]


def cpu_precisions() -> tuple[list[str], dict[str, str]]:
    """OpenVINO CPU precision hints worth trying here, and the ones skipped with why (the backend knows)."""
    from modelyard.runtime.registry import get_backend

    return get_backend("openvino:cpu").precision_hints()


def _thread_values() -> list[int | None]:
    cores = os.cpu_count() or 1
    return [None] if cores < 2 else [None, max(1, cores // 2)]


def build_space(target: str, source_format: str, calibration: str | None = None) -> Space:
    """The variants and option grids for ``target`` (a device such as ``cpu``, or one ``backend:device``).

    Args:
        target: ``cpu``, ``cuda``, ``npu``, ``gpu``, or a backend name to search that backend only.
        source_format: the spec's source format (``torch``, ``onnx``, ``openvino``).
        calibration: calibration data for static INT8 (default seeded random feeds).
    """
    from modelyard.runtime.registry import get_backend
    from modelyard.runtime.targets import backends_for, default_backend, device_of

    try:
        backends = backends_for(target)
    except InvalidInput as exc:
        raise InvalidInput(f"--{exc}") from None
    device = device_of(target)
    baseline = default_backend(source_format, device)
    skipped: list[dict] = []
    usable: list[str] = []
    for name in backends:
        ok, why = get_backend(name).available()
        if ok:
            usable.append(name)
        else:
            skipped.append({"backend": name, "reason": why})
    calib = {"calibration": calibration} if calibration else {}
    variants: list[Variant] = []
    precisions, precision_skips = (
        cpu_precisions() if any(b.startswith("openvino:cpu") for b in usable) else (["f32"], {})
    )
    for hint, why in precision_skips.items():
        skipped.append({"backend": "openvino:cpu", "precision": hint, "reason": why})
    for name in usable:
        family = name.partition(":")[0]
        if source_format == "openvino" and family != "openvino":
            skipped.append({"backend": name, "reason": "the source is an OpenVINO IR; only OpenVINO can run it"})
            continue
        if family == "openvino":
            fast_first = sorted(precisions, key=lambda p: {"bf16": 0, "f16": 1, "f32": 2}[p])
            if source_format != "openvino":
                for preset in ("performance", "mixed"):
                    for hint in fast_first:
                        variants.append(Variant.make(
                            name, [("nncf-int8", {"preset": preset, **calib}), ("onnx-to-openvino", {})], hint,
                            f"openvino int8 (nncf {preset}) {hint}", "int8"))
            for hint in fast_first:
                chain = [] if source_format == "openvino" else [("onnx-to-openvino", {})]
                variants.append(Variant.make(name, chain, hint, f"openvino {hint}",
                                             {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}[hint]))
        elif family == "onnxruntime":
            variants += [
                Variant.make(name, [("int8-static", {"per_channel": True, **calib})], None,
                             "onnxruntime int8 static per-channel", "int8"),
                Variant.make(name, [("int8-static", {"per_channel": False, **calib})], None,
                             "onnxruntime int8 static per-tensor", "int8"),
                Variant.make(name, [("int8-static-keep-float", {"per_channel": True,
                                                                "exclude_op_types": KEEP_FLOAT_OP_TYPES, **calib})],
                             None, "onnxruntime int8 static, Add/Mul/Softmax/Sigmoid float", "int8"),
                Variant.make(name, [("int8-dynamic", {"per_channel": False})], None,
                             "onnxruntime int8 dynamic per-tensor", "int8"),
                Variant.make(name, [("int8-dynamic", {"per_channel": True})], None,
                             "onnxruntime int8 dynamic per-channel", "int8"),
            ]
            if device != "cpu":
                variants.append(Variant.make(name, [("onnx-fp16", {})], None, "onnxruntime fp16", "fp16"))
            variants.append(Variant.make(name, [], None, "onnxruntime fp32", "fp32"))
        else:
            skipped.append({"backend": name, "reason": "not a searchable backend"})
    threads = _thread_values()
    grids = {
        "onnxruntime": {"threads": threads, "graph_optimization": ["all", "extended"],
                        "execution_mode": ["sequential", "parallel"]},
        "openvino": {"threads": threads, "performance_hint": ["latency", "throughput"]},
    }
    grids = {family: {k: v for k, v in grid.items() if len(v) > 0} for family, grid in grids.items()}
    # NOTE: the fp32 variants go first (stable sort: the rest keep their fast-first order). They are the ones most
    # likely to pass the accuracy gate, so a budget that runs out on a slow or busy machine still leaves an accepted
    # candidate instead of "no candidate accepted" after a few INT8 tries and their layer-blaming retries.
    variants.sort(key=lambda variant: variant.numeric_class != "fp32")
    return Space(target, baseline, tuple(variants), grids, tuple(skipped))


def keep_float_variant(variant: Variant, nodes: list[str], layers: list[str]) -> Variant | None:
    """``variant`` with ``nodes`` kept in float (its INT8 pass swapped for the keep-float one), or ``None`` when it
    has no INT8 pass to adjust."""
    swaps = {"int8-static": "int8-static-keep-float", "nncf-int8": "nncf-int8-keep-float",
             "int8-static-keep-float": "int8-static-keep-float", "nncf-int8-keep-float": "nncf-int8-keep-float"}
    chain = variant.pass_list()
    for index, (name, config) in enumerate(chain):
        if name in swaps:
            merged = sorted(set(config.get("exclude_nodes", [])) | set(nodes))
            chain[index] = (swaps[name], {**config, "exclude_nodes": merged})
            shown = ", ".join(layers[:3]) + (f" +{len(layers) - 3}" if len(layers) > 3 else "")
            label = f"{variant.parent or variant.label}, {len(layers)} layers float ({shown})"
            return Variant.make(variant.backend, chain, variant.precision, label, "int8",
                                parent=variant.parent or variant.label)
    return None
