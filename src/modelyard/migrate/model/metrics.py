"""Tensor metrics, thresholds and verdicts for precision comparison.

Metrics are accumulated sample by sample (``TensorStats.update``), so comparing many samples or many layers never
holds more than one sample of one tensor per side in memory.

Default thresholds (every one overridable, per output too) by the target's precision class:

============  ===========  ================  ===========  ================  ============  ==================
preset        pass_cosine  pass_max_abs_err  fail_cosine  fail_max_abs_err  fail_sqnr_db  allclose rtol/atol
============  ===========  ================  ===========  ================  ============  ==================
fp32          0.99         1e-3              0.9          1.0               80            1.3e-6 / 1e-5
fp16          0.99         1e-2              0.9          —                 30            1e-3 / 1e-5
bf16          0.99         3e-2              0.9          —                 20            1.6e-2 / 1e-5
int8          0.98         —                 0.9          —                 10            1.6e-2 / 1e-5
============  ===========  ================  ===========  ================  ============  ==================

A tensor *fails* when shapes differ, nan/inf positions differ, cosine < fail_cosine, max abs err > fail_max_abs_err
or SQNR < fail_sqnr_db; it *passes* when cosine >= pass_cosine and max abs err <= the pass limit, where the pass
limit is ``max(pass_max_abs_err, noise_floor_factor x the reference's own max abs err against fp64)``; else *warn*.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard.core.errors import InvalidInput

VERDICTS = ("pass", "warn", "fail")
PRESETS = ("fp32", "fp16", "bf16", "int8")


class Thresholds(BaseModel):
    """Verdict thresholds for one tensor (see the module docstring for defaults per preset)."""

    model_config = ConfigDict(extra="forbid")

    pass_cosine: float = Field(default=0.99, ge=-1, le=1)
    pass_max_abs_err: float | None = Field(default=1e-3, ge=0)
    fail_cosine: float = Field(default=0.9, ge=-1, le=1)
    fail_max_abs_err: float | None = Field(default=1.0, ge=0)
    fail_sqnr_db: float | None = 80.0
    fail_on_nonfinite_mismatch: bool = True
    noise_floor_factor: float | None = Field(default=4.0, gt=0)
    rtol: float = Field(default=1.3e-6, ge=0)
    atol: float = Field(default=1e-5, ge=0)
    pass_top1_agreement: float = Field(default=1.0, ge=0, le=1)
    fail_top1_agreement: float = Field(default=0.9, ge=0, le=1)
    pass_task_rel_err: float = Field(default=0.01, ge=0)
    fail_task_rel_err: float = Field(default=0.1, ge=0)


_PRESET_VALUES: dict[str, dict] = {
    "fp32": {},
    "fp16": {
        "pass_max_abs_err": 1e-2, "fail_max_abs_err": None, "fail_sqnr_db": 30.0, "rtol": 1e-3,
        "pass_top1_agreement": 0.99, "fail_top1_agreement": 0.9, "pass_task_rel_err": 0.01,
    },
    "bf16": {
        "pass_max_abs_err": 3e-2, "fail_max_abs_err": None, "fail_sqnr_db": 20.0, "rtol": 1.6e-2,
        "pass_top1_agreement": 0.98, "fail_top1_agreement": 0.85, "pass_task_rel_err": 0.02,
    },
    "int8": {
        "pass_cosine": 0.98, "pass_max_abs_err": None, "fail_max_abs_err": None, "fail_sqnr_db": 10.0,
        "rtol": 1.6e-2, "pass_top1_agreement": 0.95, "fail_top1_agreement": 0.7, "pass_task_rel_err": 0.02,
        "fail_task_rel_err": 0.2,
    },
}


def preset_thresholds(preset: str) -> Thresholds:
    if preset not in _PRESET_VALUES:
        raise InvalidInput(f"unknown threshold preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return Thresholds(**_PRESET_VALUES[preset])


class ThresholdSet(BaseModel):
    """Thresholds for a whole comparison: a preset, overrides for every tensor, overrides per output name.

    File form (YAML/JSON)::

        preset: fp16
        default: {pass_cosine: 0.995}
        outputs:
          logits: {pass_max_abs_err: 0.05}
    """

    model_config = ConfigDict(extra="forbid")

    preset: Literal["fp32", "fp16", "bf16", "int8"] = "fp32"
    default: dict[str, float | bool | None] = Field(default_factory=dict)
    outputs: dict[str, dict[str, float | bool | None]] = Field(default_factory=dict)

    def base(self) -> Thresholds:
        return _merge(preset_thresholds(self.preset), self.default, "default")

    def for_output(self, name: str) -> Thresholds:
        return _merge(self.base(), self.outputs.get(name, {}), f"outputs.{name}")

    def to_dict(self) -> dict:
        return {
            "preset": self.preset,
            "default": self.base().model_dump(),
            "outputs": {name: self.for_output(name).model_dump() for name in self.outputs},
        }


def _merge(base: Thresholds, overrides: dict, where: str) -> Thresholds:
    try:
        return Thresholds(**{**base.model_dump(), **overrides})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidInput(f"thresholds.{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None


def load_thresholds(path: str | None, preset: str | None = None) -> ThresholdSet:
    """A ThresholdSet from a YAML/JSON file (or defaults); ``preset`` overrides the file's preset."""
    import json
    from pathlib import Path

    import yaml

    data: dict = {}
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise InvalidInput(f"thresholds file {p} does not exist")
        try:
            data = (json.loads if p.suffix == ".json" else yaml.safe_load)(p.read_text(encoding="utf-8")) or {}
        except (ValueError, yaml.YAMLError) as exc:
            raise InvalidInput(f"thresholds file {p.name} is not valid: {exc}") from None
    if preset:
        data = {**data, "preset": preset}
    try:
        return ThresholdSet.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidInput(f"thresholds.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


class TensorStats:
    """Streaming comparison of one tensor (reference vs target) over samples.

    Relative error is ``|t - r| / max(|r|, 1e-3 * max|r| of the sample, 1e-6)`` so elements near zero do not
    dominate; the ‰ and 1 % error ratios count elements above 0.001 and 0.01 relative error.
    """

    def __init__(self, name: str, rtol: float = 1.3e-6, atol: float = 1e-5):
        self.name = name
        self.rtol = rtol
        self.atol = atol
        self.shape: tuple[int, ...] | None = None
        self.target_shape: tuple[int, ...] | None = None
        self.dtype: str | None = None
        self.shape_mismatch = False
        self.samples = 0
        self.elements = 0
        self.finite = 0
        self.nan_mismatch = 0
        self.inf_mismatch = 0
        self.ref_nonfinite = 0
        self.max_abs = 0.0
        self.max_rel = 0.0
        self.sum_abs = 0.0
        self.sum_sq = 0.0
        self.ref_sq = 0.0
        self.tgt_sq = 0.0
        self.dot = 0.0
        self.over_permille = 0
        self.over_percent = 0
        self.allclose = True

    def update(self, reference: np.ndarray, target: np.ndarray) -> None:
        self.samples += 1
        if self.dtype is None:
            self.dtype = str(np.asarray(target).dtype)
        if self.shape is None:
            self.shape = tuple(reference.shape)
            self.target_shape = tuple(target.shape)
        if reference.shape != target.shape:
            self.shape_mismatch = True
            self.target_shape = tuple(target.shape)
            return
        r = np.asarray(reference, dtype=np.float64).ravel()
        t = np.asarray(target, dtype=np.float64).ravel()
        self.elements += r.size
        r_nan, t_nan = np.isnan(r), np.isnan(t)
        self.nan_mismatch += int(np.count_nonzero(r_nan != t_nan))
        r_inf, t_inf = np.isinf(r), np.isinf(t)
        self.inf_mismatch += int(np.count_nonzero((r_inf != t_inf) | (r_inf & t_inf & (np.sign(r) != np.sign(t)))))
        self.ref_nonfinite += int(np.count_nonzero(~np.isfinite(r)))
        mask = np.isfinite(r) & np.isfinite(t)
        if not mask.all():
            r, t = r[mask], t[mask]
        if r.size == 0:
            return
        self.finite += r.size
        diff = np.abs(t - r)
        abs_r = np.abs(r)
        self.max_abs = max(self.max_abs, float(diff.max()))
        self.sum_abs += float(diff.sum())
        self.sum_sq += float(np.dot(diff, diff))
        self.ref_sq += float(np.dot(r, r))
        self.tgt_sq += float(np.dot(t, t))
        self.dot += float(np.dot(r, t))
        floor = max(1e-6, 1e-3 * float(abs_r.max()))
        rel = diff / np.maximum(abs_r, floor)
        self.max_rel = max(self.max_rel, float(rel.max()))
        self.over_permille += int(np.count_nonzero(rel > 1e-3))
        self.over_percent += int(np.count_nonzero(rel > 1e-2))
        if self.allclose and np.any(diff > self.atol + self.rtol * abs_r):
            self.allclose = False

    @property
    def cosine(self) -> float | None:
        if self.finite == 0:
            return None
        if self.ref_sq == 0 and self.tgt_sq == 0:
            return 1.0
        if self.ref_sq == 0 or self.tgt_sq == 0:
            return 0.0
        return max(-1.0, min(1.0, self.dot / math.sqrt(self.ref_sq * self.tgt_sq)))

    @property
    def rmse(self) -> float | None:
        return math.sqrt(self.sum_sq / self.finite) if self.finite else None

    @property
    def sqnr_db(self) -> float | None:
        """SQNR = 10 log10(sum r^2 / sum (t - r)^2); ``None`` when identical (infinite)."""
        if self.finite == 0 or self.sum_sq == 0:
            return None
        if self.ref_sq == 0:
            return -math.inf
        return 10.0 * math.log10(self.ref_sq / self.sum_sq)

    def metrics(self) -> dict:
        """The metrics as JSON-able values (``sqnr_db`` null means identical)."""
        nonfinite = self.nan_mismatch + self.inf_mismatch
        return {
            "shape": list(self.shape or ()),
            "target_shape": list(self.target_shape or ()) if self.shape_mismatch else None,
            "dtype": self.dtype,
            "samples": self.samples,
            "elements": self.elements,
            "max_abs_err": self.max_abs if self.finite else None,
            "max_rel_err": self.max_rel if self.finite else None,
            "mean_abs_err": self.sum_abs / self.finite if self.finite else None,
            "rmse": self.rmse,
            "cosine": self.cosine,
            "sqnr_db": _finite_or_none(self.sqnr_db) if self.sqnr_db != -math.inf else -999.0,
            "err_ratio_permille": self.over_permille / self.finite if self.finite else None,
            "err_ratio_percent": self.over_percent / self.finite if self.finite else None,
            "nan_mismatch": self.nan_mismatch,
            "inf_mismatch": self.inf_mismatch,
            "nonfinite_mismatch": nonfinite,
            "allclose": bool(self.allclose and not self.shape_mismatch and nonfinite == 0 and self.finite > 0),
        }


def verdict_for(
    stats: TensorStats, thresholds: Thresholds, floor_max_abs: float | None = None
) -> tuple[str, list[str]]:
    """``(verdict, reasons)`` for one compared tensor (see the module docstring for the rule)."""
    if stats.shape_mismatch:
        return "fail", [
            f"shape differs: reference {list(stats.shape or ())} vs target {list(stats.target_shape or ())}"
        ]
    reasons: list[str] = []
    nonfinite = stats.nan_mismatch + stats.inf_mismatch
    if nonfinite and thresholds.fail_on_nonfinite_mismatch:
        reasons.append(f"{stats.nan_mismatch} nan and {stats.inf_mismatch} inf mismatches")
    if stats.finite == 0:
        reasons.append(
            "no finite values to compare" + (" (the reference itself is nan/inf)" if stats.ref_nonfinite else "")
        )
        return "fail", reasons
    cosine, max_abs, sqnr = stats.cosine, stats.max_abs, stats.sqnr_db
    if cosine is not None and cosine < thresholds.fail_cosine:
        reasons.append(f"cosine {cosine:.4f} < {thresholds.fail_cosine}")
    if thresholds.fail_max_abs_err is not None and max_abs > thresholds.fail_max_abs_err:
        reasons.append(f"max abs err {max_abs:.3g} > {thresholds.fail_max_abs_err}")
    if thresholds.fail_sqnr_db is not None and sqnr is not None and sqnr < thresholds.fail_sqnr_db:
        reasons.append(f"SQNR {sqnr:.1f} dB < {thresholds.fail_sqnr_db} dB")
    if reasons:
        return "fail", reasons
    limit = thresholds.pass_max_abs_err
    if limit is not None and floor_max_abs is not None and thresholds.noise_floor_factor:
        limit = max(limit, thresholds.noise_floor_factor * floor_max_abs)
    if cosine is not None and cosine < thresholds.pass_cosine:
        reasons.append(f"cosine {cosine:.5f} < {thresholds.pass_cosine}")
    if limit is not None and max_abs > limit:
        reasons.append(f"max abs err {max_abs:.3g} > {limit:.3g}")
    return ("warn", reasons) if reasons else ("pass", [])


def worst(verdicts: list[str]) -> str:
    """The worst of several verdicts (``pass`` when empty)."""
    return max(verdicts, key=VERDICTS.index) if verdicts else "pass"


class TaskStats:
    """Task-level agreement between reference and target predictions, accumulated over samples.

    classification: top-1 agreement, and top-k agreement (the reference's top-1 class is in the target's top k);
    regression: relative L2 error of the prediction; embedding: cosine per embedding (mean and min).
    """

    def __init__(self, task_type: str, output: str, top_k: int = 5):
        self.type = task_type
        self.output = output
        self.top_k = top_k
        self.count = 0
        self.top1 = 0
        self.topk = 0
        self.err_sq = 0.0
        self.ref_sq = 0.0
        self.cosines: list[float] = []

    def observe(self, reference: dict[str, np.ndarray], target: dict[str, np.ndarray]) -> None:
        """One sample's outputs of both sides (the target's keyed by the reference's names)."""
        self.update(reference[self.output], target[self.output])

    def update(self, reference: np.ndarray, target: np.ndarray) -> None:
        if reference.shape != target.shape or reference.ndim == 0:
            return
        r = np.asarray(reference, dtype=np.float64)
        t = np.asarray(target, dtype=np.float64)
        if self.type == "classification":
            r2 = r.reshape(-1, r.shape[-1])
            t2 = np.nan_to_num(t.reshape(-1, t.shape[-1]), nan=-np.inf)
            ref_top1 = r2.argmax(axis=-1)
            k = min(self.top_k, r2.shape[-1])
            tgt_topk = np.argsort(-t2, axis=-1, kind="stable")[:, :k]
            self.count += len(ref_top1)
            self.top1 += int(np.count_nonzero(tgt_topk[:, 0] == ref_top1))
            self.topk += int(np.count_nonzero((tgt_topk == ref_top1[:, None]).any(axis=-1)))
        elif self.type == "regression":
            self.count += r.size
            self.err_sq += float(np.nansum((t - r) ** 2)) + float(np.count_nonzero(np.isnan(t))) * 1e300
            self.ref_sq += float(np.sum(r**2))
        elif self.type == "embedding":
            r2 = r.reshape(-1, r.shape[-1])
            t2 = t.reshape(-1, t.shape[-1])
            norms = np.linalg.norm(r2, axis=-1) * np.linalg.norm(t2, axis=-1)
            cos = np.where(norms > 0, np.sum(r2 * t2, axis=-1) / np.where(norms > 0, norms, 1), 1.0)
            self.cosines.extend(float(c) for c in np.nan_to_num(cos, nan=-1.0))
            self.count += len(cos)

    def result(self, thresholds: Thresholds) -> dict:
        out: dict = {"type": self.type, "output": self.output, "count": self.count}
        if self.count == 0:
            out.update(verdict="fail", reasons=["no predictions could be compared (shapes differ?)"])
            return out
        if self.type == "classification":
            top1 = self.top1 / self.count
            out.update(top1_agreement=top1, top_k=self.top_k, topk_agreement=self.topk / self.count)
            verdict = "pass" if top1 >= thresholds.pass_top1_agreement else (
                "fail" if top1 < thresholds.fail_top1_agreement else "warn")
            out["reasons"] = [] if verdict == "pass" else [f"top-1 agreement {top1:.3f}"]
        elif self.type == "regression":
            rel = math.sqrt(self.err_sq / self.ref_sq) if self.ref_sq > 0 else (0.0 if self.err_sq == 0 else math.inf)
            out["relative_error"] = rel if math.isfinite(rel) else None
            verdict = "pass" if rel <= thresholds.pass_task_rel_err else (
                "fail" if rel > thresholds.fail_task_rel_err else "warn")
            out["reasons"] = [] if verdict == "pass" else [f"relative error {rel:.3g}"]
        else:
            mean, low = float(np.mean(self.cosines)), float(np.min(self.cosines))
            out.update(mean_cosine=mean, min_cosine=low)
            verdict = "pass" if low >= thresholds.pass_cosine else ("fail" if low < thresholds.fail_cosine else "warn")
            out["reasons"] = [] if verdict == "pass" else [f"min embedding cosine {low:.4f}"]
        out["verdict"] = verdict
        return out
