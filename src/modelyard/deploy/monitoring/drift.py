"""Drift tests: one feature (numbers or categories) or one embedding, current window against a reference.

Evidently picks one test by the reference's size (<= 1000 rows: KS / chi-squared p-value; more: normed Wasserstein
/ Jensen-Shannon distance against 0.1). Each half fails in its own way: a p-value alone flags a negligible shift
once the window is large (evidently #50: "everything drifts" on big data), a distance alone flags the noise of a
small window (#509), and the verdict flips when the reference crosses 1000 rows. Here every feature gets both, and
a feature drifts only when

* the window holds at least ``min_rows`` rows (fewer: ``insufficient``, never drift),
* the two-sample test is significant at ``alpha`` divided by the number of tests in the window (Bonferroni, so
  the chance that a stationary window raises any flag stays at most ``alpha``), and
* the effect size reaches ``min_effect`` (normed Wasserstein for numbers, Jensen-Shannon distance for
  categories), so what is flagged is a shift large enough to matter, whatever the sample sizes.

The verdict is therefore stable in both sample sizes. ``method`` still names the test Evidently would have used,
and PSI (10 reference-quantile bins) is reported beside it for those used to its bands (< 0.1 stable, 0.1-0.2
moderate, > 0.2 significant).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

EVIDENTLY_SMALL_REFERENCE = 1000
MMD_PERMUTATIONS = 200
MMD_MAX_ROWS = 400
_EPS = 1e-4


@dataclass(frozen=True)
class DriftTest:
    """The verdict on one feature in one window.

    Attributes:
        feature: the column (``f.bill_length_mm``, ``p.class``, ``e.image``).
        kind: ``numeric``, ``categorical`` or ``embedding``.
        method: the test Evidently would pick (``ks``, ``chi2``, ``wasserstein``, ``jensenshannon``) or ``mmd``.
        statistic: the two-sample test's statistic (KS D, chi-squared, MMD^2).
        p_value: its p-value.
        effect: the effect size (normed Wasserstein, Jensen-Shannon distance, MMD^2 over its permutation scale).
        effect_name: what ``effect`` is.
        psi: population stability index (None for embeddings).
        rows, reference_rows: the sample sizes.
        drifted: the verdict; ``status`` says why: ``drift``, ``stable``, ``small_effect`` (significant but below
            ``min_effect``), ``not_significant`` or ``insufficient``.
    """

    feature: str
    kind: str
    method: str
    statistic: float | None
    p_value: float | None
    effect: float | None
    effect_name: str
    psi: float | None
    rows: int
    reference_rows: int
    drifted: bool
    status: str

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def __bool__(self) -> bool:
        return self.drifted


def _verdict(rows: int, p_value: float, effect: float, min_rows: int, alpha: float,
             min_effect: float) -> tuple[bool, str]:
    if rows < min_rows:
        return False, "insufficient"
    significant = p_value < alpha
    large = effect >= min_effect
    if significant and large:
        return True, "drift"
    if significant:
        return False, "small_effect"
    return False, "not_significant" if large else "stable"


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI over the reference's quantile bins (open-ended outer bins), shares floored at 1e-4."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    return _psi(ref_counts, cur_counts)


def _psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    ref = np.maximum(ref_counts / max(ref_counts.sum(), 1), _EPS)
    cur = np.maximum(cur_counts / max(cur_counts.sum(), 1), _EPS)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def numeric_drift(feature: str, reference: np.ndarray, current: np.ndarray, *, min_rows: int = 50,
                  alpha: float = 0.01, min_effect: float = 0.1) -> DriftTest:
    """KS test + normed Wasserstein distance (+ PSI) on the finite values of both samples."""
    from scipy import stats

    reference = np.asarray(reference, np.float64)
    current = np.asarray(current, np.float64)
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    method = "ks" if len(reference) <= EVIDENTLY_SMALL_REFERENCE else "wasserstein"
    if len(current) < min_rows or len(reference) < 2:
        return DriftTest(feature, "numeric", method, None, None, None, "normed_wasserstein", None, len(current),
                         len(reference), False, "insufficient")
    result = stats.ks_2samp(reference, current)
    scale = float(np.std(reference))
    if scale <= 0:  # a constant reference: any spread or move is measured against its magnitude
        scale = max(abs(float(np.mean(reference))), 1.0)
    effect = float(stats.wasserstein_distance(reference, current)) / scale
    drifted, status = _verdict(len(current), float(result.pvalue), effect, min_rows, alpha, min_effect)
    return DriftTest(feature, "numeric", method, float(result.statistic), float(result.pvalue), effect,
                     "normed_wasserstein", psi_numeric(reference, current), len(current), len(reference), drifted,
                     status)


def categorical_drift(feature: str, reference, current, *, min_rows: int = 50, alpha: float = 0.01,
                      min_effect: float = 0.1) -> DriftTest:
    """Two-sample chi-squared test (categories with fewer than 5 expected rows pooled) + Jensen-Shannon distance
    (+ PSI). Missing values are not a category here; data quality counts them."""
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    ref = [str(v) for v in reference if v is not None and v == v]
    cur = [str(v) for v in current if v is not None and v == v]
    method = "chi2" if len(ref) <= EVIDENTLY_SMALL_REFERENCE else "jensenshannon"
    if len(cur) < min_rows or len(ref) < 2:
        return DriftTest(feature, "categorical", method, None, None, None, "jensen_shannon", None, len(cur),
                         len(ref), False, "insufficient")
    categories = sorted(set(ref) | set(cur))
    index = {c: i for i, c in enumerate(categories)}
    ref_counts = np.bincount([index[v] for v in ref], minlength=len(categories)).astype(np.float64)
    cur_counts = np.bincount([index[v] for v in cur], minlength=len(categories)).astype(np.float64)
    effect = float(jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum(), base=2))
    effect = 0.0 if not np.isfinite(effect) else effect
    table = _pooled_table(ref_counts, cur_counts)
    if table.shape[1] < 2:
        statistic, p_value = 0.0, 1.0
    else:
        statistic, p_value = stats.chi2_contingency(table, correction=False)[:2]
    drifted, status = _verdict(len(cur), float(p_value), effect, min_rows, alpha, min_effect)
    return DriftTest(feature, "categorical", method, float(statistic), float(p_value), effect, "jensen_shannon",
                     _psi(ref_counts, cur_counts), len(cur), len(ref), drifted, status)


def _pooled_table(ref_counts: np.ndarray, cur_counts: np.ndarray) -> np.ndarray:
    """The 2 x k table with rare categories (fewer than 5 expected rows in either sample) pooled into one, so
    the chi-squared approximation holds."""
    total = ref_counts + cur_counts
    share = total / total.sum()
    expected_small = np.minimum(share * ref_counts.sum(), share * cur_counts.sum()) < 5
    kept = ~expected_small
    columns = [np.stack([ref_counts[kept], cur_counts[kept]])] if kept.any() else []
    if expected_small.any():
        columns.append(np.array([[ref_counts[expected_small].sum()], [cur_counts[expected_small].sum()]]))
    table = np.concatenate(columns, axis=1) if columns else np.zeros((2, 0))
    if table.shape[1] >= 2 and (table.sum(axis=0) * min(table.sum(axis=1)) / table.sum() < 5).any():
        # the pooled bucket itself is still too small: fold it into the smallest kept category
        order = np.argsort(table.sum(axis=0))
        merged = table[:, order[1:]].copy()
        merged[:, 0] += table[:, order[0]]
        table = merged
    return table


def _rbf_kernel(a: np.ndarray, b: np.ndarray, gamma: float) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.exp(-gamma * np.maximum(sq, 0))


def _mmd2(kernel: np.ndarray, n: int) -> float:
    kxx, kyy, kxy = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    m = kernel.shape[0] - n
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def embedding_drift(feature: str, reference: np.ndarray, current: np.ndarray, *, min_rows: int = 50,
                    alpha: float = 0.01, min_effect: float = 0.1, seed: int = 0) -> DriftTest:
    """MMD^2 with an RBF kernel (median-distance bandwidth) and a permutation test; at most MMD_MAX_ROWS rows
    of each side are used (a random subsample), so the cost is bounded. The effect is MMD^2 over the mean kernel
    value within the reference (a share of the reference's own similarity that the shift removed), judged against
    half of ``min_effect``."""
    reference = np.asarray(reference, np.float64)
    current = np.asarray(current, np.float64)
    if len(current) < min_rows or len(reference) < 2:
        return DriftTest(feature, "embedding", "mmd", None, None, None, "mmd2_share", None, len(current),
                         len(reference), False, "insufficient")
    rng = np.random.default_rng(seed)
    if len(reference) > MMD_MAX_ROWS:
        reference = reference[rng.choice(len(reference), MMD_MAX_ROWS, replace=False)]
    rows = len(current)
    if len(current) > MMD_MAX_ROWS:
        current = current[rng.choice(len(current), MMD_MAX_ROWS, replace=False)]
    joint = np.concatenate([reference, current])
    sample = joint[rng.choice(len(joint), min(len(joint), 300), replace=False)]
    distances = ((sample[:, None, :] - sample[None, :, :]) ** 2).sum(-1)
    median = float(np.median(distances[distances > 0])) if (distances > 0).any() else 1.0
    kernel = _rbf_kernel(joint, joint, 1.0 / median)
    n = len(reference)
    observed = _mmd2(kernel, n)
    exceed = 0
    for _ in range(MMD_PERMUTATIONS):
        order = rng.permutation(len(joint))
        exceed += _mmd2(kernel[np.ix_(order, order)], n) >= observed
    p_value = (exceed + 1) / (MMD_PERMUTATIONS + 1)
    within = kernel[:n, :n]
    scale = float((within.sum() - np.trace(within)) / (n * (n - 1))) or 1.0
    effect = max(observed, 0.0) / scale
    # the permutation p-value cannot go below 1/(permutations+1): significance at that floor counts
    # MMD^2 shares run smaller than the per-feature distances for the same visible change: half the threshold
    drifted, status = _verdict(rows, p_value, effect, min_rows, max(alpha, 1.5 / (MMD_PERMUTATIONS + 1)),
                               min_effect / 2)
    return DriftTest(feature, "embedding", "mmd", observed, p_value, effect, "mmd2_share", None, rows,
                     len(reference), drifted, status)


def feature_kind(values) -> str:
    """``numeric`` or ``categorical`` for a column of values (text, booleans kept as categories)."""
    array = np.asarray(values)
    return "numeric" if array.dtype.kind in "fiu" else "categorical"


def detect(reference: dict[str, object], current: dict[str, object], *, min_rows: int = 50, alpha: float = 0.005,
           min_effect: float = 0.1) -> list[DriftTest]:
    """Test every column the two samples share (``f.``/``s.`` columns numeric or categorical, ``e.`` columns
    embeddings), with Bonferroni over the number of tests."""
    names = [name for name in current if name in reference]
    if not names:
        return []
    per_test = alpha / len(names)
    tests = []
    for name in names:
        ref, cur = reference[name], current[name]
        if name.startswith("e."):
            tests.append(embedding_drift(name, np.stack(list(ref)), np.stack(list(cur)), min_rows=min_rows,
                                         alpha=per_test, min_effect=min_effect))
        elif feature_kind(ref) == "numeric" and feature_kind(cur) == "numeric":
            tests.append(numeric_drift(name, ref, cur, min_rows=min_rows, alpha=per_test, min_effect=min_effect))
        else:
            tests.append(categorical_drift(name, ref, cur, min_rows=min_rows, alpha=per_test,
                                           min_effect=min_effect))
    return tests
