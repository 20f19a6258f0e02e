"""Data quality of a window against the reference's statistics: missing values, numbers outside the reference's
range, categories the reference never had.

A share is flagged only when it is both clearly above what the reference itself shows (by ``min_delta``) and
unlikely under it (one-sided binomial test at ``alpha`` over the number of checks): even stationary data falls
outside a reference's min-max range now and then (about 2 / (reference rows + 1) of the time), and a window of 20
rows with one missing value is no incident.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

MIN_DELTA = 0.02
EXAMPLES = 5


@dataclass(frozen=True)
class QualityCheck:
    """One feature's quality in one window. Shares are of the window's rows; ``issues`` names what is off."""

    feature: str
    kind: str
    rows: int
    missing_share: float
    reference_missing_share: float
    out_of_range_share: float | None = None
    reference_range: tuple[float, float] | None = None
    unseen_share: float | None = None
    unseen_examples: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["reference_range"] = list(self.reference_range) if self.reference_range else None
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in data.items()}


def _missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    return np.array([v is None or v == "" or v != v for v in values.tolist()], dtype=bool)


def _excess(count: int, rows: int, expected: float, alpha: float) -> bool:
    """True when ``count`` of ``rows`` is clearly and significantly above a share of ``expected``."""
    from scipy import stats

    if rows == 0 or count / rows - expected < MIN_DELTA:
        return False
    return float(stats.binom.sf(count - 1, rows, min(max(expected, 1e-6), 1.0))) < alpha


def check_feature(name: str, reference: np.ndarray, current: np.ndarray, alpha: float = 0.01) -> QualityCheck:
    """Missing, out-of-range (numbers) and unseen (categories) shares of ``current`` against ``reference``."""
    reference, current = np.asarray(reference), np.asarray(current)
    numeric = reference.dtype.kind in "fiu" and current.dtype.kind in "fiu"
    ref_missing, cur_missing = _missing(reference), _missing(current)
    rows = len(current)
    ref_missing_share = float(ref_missing.mean()) if len(reference) else 0.0
    missing_share = float(cur_missing.mean()) if rows else 0.0
    issues = []
    if _excess(int(cur_missing.sum()), rows, ref_missing_share, alpha):
        issues.append(f"missing {missing_share:.1%} (reference {ref_missing_share:.1%})")
    present_ref, present = reference[~ref_missing], current[~cur_missing]
    if numeric:
        if not len(present_ref):
            return QualityCheck(name, "numeric", rows, missing_share, ref_missing_share, issues=issues)
        low, high = float(present_ref.min()), float(present_ref.max())
        outside = int(((present < low) | (present > high)).sum())
        share = outside / rows if rows else 0.0
        if _excess(outside, rows, 2.0 / (len(present_ref) + 1), alpha):
            issues.append(f"{share:.1%} outside the reference range [{low:g}, {high:g}]")
        return QualityCheck(name, "numeric", rows, missing_share, ref_missing_share, share, (low, high),
                            issues=issues)
    known = {str(v) for v in present_ref.tolist()}
    unseen = [str(v) for v in present.tolist() if str(v) not in known]
    share = len(unseen) / rows if rows else 0.0
    # a category seen once in n reference rows is what a stationary window meets as "new" ~1/n of the time
    if _excess(len(unseen), rows, 1.0 / (len(present_ref) + 1), alpha):
        issues.append(f"{share:.1%} in categories the reference never had")
    examples = [value for value, _ in _most_common(unseen)]
    return QualityCheck(name, "categorical", rows, missing_share, ref_missing_share, unseen_share=share,
                        unseen_examples=examples, issues=issues)


def _most_common(values: list[str]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return sorted(counts.items(), key=lambda item: -item[1])[:EXAMPLES]


def data_quality(reference: dict[str, np.ndarray], current: dict[str, np.ndarray],
                 alpha: float = 0.01) -> list[QualityCheck]:
    """A check of every feature column (``f.``) both sides have; Bonferroni over the checks."""
    names = [n for n in current if n.startswith("f.") and n in reference]
    per_check = alpha / max(1, 3 * len(names))
    return [check_feature(name, reference[name], current[name], per_check) for name in names]
