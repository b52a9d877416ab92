"""The window tests, each calibrated on the reference itself, and the feedback CUSUM.

Why calibrated: clinical images come in clusters. A patient brings 2-6 photos that share skin
tone, disease and camera distance, so neither the reference (several photos per patient) nor a
window (whole patients, uploaded together) is an independent sample. Textbook p-values (KS,
chi-square, an MMD permutation test) assume independence and false-alarm far above their level on
such data (benchmarks/drift.py: 14 % of unshifted windows of 100 instead of 5 %). So every test
compares its statistic with a null distribution made from the reference: `windows` times, a window
of n rows is formed from whole reference patients (the clustering a clinic stream has) and tested
against the remaining reference; p = (1 + #{null ≥ observed}) / (windows + 1), a Monte Carlo test.
Statistics whose spread shrinks with the sample sizes (KS D, a median shift, MMD²) are compared
size-scaled (`size_scale`): a null window meets N - n reference rows, the real window all N.

* image statistics: two-sample KS per feature; the family statistic is the smallest asymptotic
  p-value (Westfall-Young min-p, the calibrated form of Bonferroni); a feature is drifted when its
  own p is below the alpha-quantile of the null minima;
* embeddings: unbiased MMD² with an RBF kernel whose bandwidth is the median pairwise distance of
  the reference; the null windows reuse one reference kernel matrix (one matrix product for all);
* predicted-class mix: the chi-square statistic of the 2 x classes table of counts;
* calibrated confidence: the two-sample KS statistic;
* skin tone (tone.py): KS and median shift of ITA°, one family p (`calibrated_min_p`);
* error rate of reviewed feedback: a one-sided Bernoulli CUSUM (sequential, not calibrated this way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kstwo

from components.monitor_drift.config import CusumConfig

DRIFT, NO_DRIFT, SKIPPED = "drift", "no_drift", "skipped"
_MEDIAN_POINTS = 500  # points the median pairwise distance is estimated on


@dataclass(frozen=True)
class CheckResult:
    """One test on one window. `threshold` is the level p is compared with (h for the CUSUM)."""

    name: str
    verdict: str  # drift | no_drift | skipped
    reason: str
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def skipped(name: str, reason: str) -> CheckResult:
    return CheckResult(name, SKIPPED, reason)


def monte_carlo_p(observed: float, null: np.ndarray) -> float:
    """P-value of `observed` (larger = more extreme) against null draws, never 0."""
    return float((1 + np.sum(null >= observed)) / (len(null) + 1))


def group_windows(groups: np.ndarray, n: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`count` row-index sets of n rows each, made of whole groups (patients) in random order, the last
    group cut to fit. n is capped at half the rows, so the rest still stands for the reference."""
    n = max(1, min(n, len(groups) // 2))
    order = np.argsort(groups, kind="stable")
    _, starts = np.unique(groups[order], return_index=True)
    members = np.split(order, starts[1:])
    windows = []
    for _ in range(count):
        picked, total = [], 0
        for g in rng.permutation(len(members)):
            idx = members[g]
            if total + len(idx) > n:
                idx = rng.choice(idx, n - total, replace=False)
            picked.append(idx)
            total += len(idx)
            if total >= n:
                break
        windows.append(np.concatenate(picked))
    return windows


def _rest(size: int, window: np.ndarray) -> np.ndarray:
    mask = np.ones(size, dtype=bool)
    mask[window] = False
    return mask


def size_scale(m: int | np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """sqrt(m n / (m + n)): a two-sample statistic of samples of m and n rows times this (KS D, a
    shift of medians; its square for MMD²) has a spread that no longer depends on the sizes.

    Why: a calibration window of n rows is tested against the rest of the reference (N - n rows),
    the real window against all N. Unscaled, the null is wider than the test it calibrates: by 3 %
    for n = 500 of N = 2,000, by 15 % for n = 1,000, power given away for nothing."""
    m, n = np.asarray(m, dtype=float), np.asarray(n, dtype=float)
    return np.sqrt(m * n / (m + n))


# --- image statistics -----------------------------------------------------------------------


def ks_statistics(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Two-sample KS statistic D per column (vectorised: one sort and two searches per column)."""
    out = np.empty(ref.shape[1])
    for j in range(ref.shape[1]):
        r, c = np.sort(ref[:, j]), np.sort(cur[:, j])
        z = np.concatenate([r, c])
        out[j] = np.abs(np.searchsorted(r, z, "right") / len(r) - np.searchsorted(c, z, "right") / len(c)).max()
    return out


def ks_pvalues(d: np.ndarray, m: int, n: int) -> np.ndarray:
    """Smirnov's asymptotic two-sided p-value, as scipy's ks_2samp(method="asymp") computes it."""
    return np.clip(kstwo.sf(d, np.round(m * n / (m + n))), 0.0, 1.0)


def feature_null(ref: np.ndarray, groups: np.ndarray, n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Smallest per-feature KS p-value of whole-patient windows against the rest of the reference.

    Every window has the same size (group_windows), so every feature of every window has the same
    sample sizes and the p-value falls as D grows: the smallest p is the p of the largest D, and
    one vectorised kstwo.sf call (~0.1-0.5 ms per value) serves all windows."""
    windows = group_windows(groups, n, count, rng)
    largest = np.array([ks_statistics(ref[_rest(len(ref), w)], ref[w]).max() for w in windows])
    size = len(windows[0])
    return ks_pvalues(largest, len(ref) - size, size)


def feature_check(
    ref: pd.DataFrame, cur: pd.DataFrame, features: Sequence[str], null_minp: np.ndarray, alpha: float, min_share: float
) -> tuple[CheckResult, dict[str, dict[str, Any]]]:
    """KS per feature, calibrated min-p over the features; returns the check and the per-feature table."""
    r, c = ref[list(features)].to_numpy(float), cur[list(features)].to_numpy(float)
    stats = ks_statistics(r, c)
    pvals = ks_pvalues(stats, len(r), len(c))
    adjusted = np.array([float((1 + np.sum(null_minp <= p)) / (len(null_minp) + 1)) for p in pvals])
    per_feature = {}
    for j, name in enumerate(features):
        per_feature[name] = {
            "statistic": float(stats[j]),
            "p_value": float(pvals[j]),
            "adjusted_p": float(adjusted[j]),
            "drifted": bool(adjusted[j] <= alpha),
            "reference_median": float(np.median(r[:, j])),
            "current_median": float(np.median(c[:, j])),
        }
    drifted = [k for k, v in per_feature.items() if v["drifted"]]
    share = len(drifted) / len(features)
    p = float(adjusted.min())
    listed = f" ({', '.join(drifted)})" if drifted else ""
    check = CheckResult(
        "image_statistics",
        DRIFT if drifted and share >= min_share else NO_DRIFT,
        f"{len(drifted)}/{len(features)} image statistics drifted{listed}: KS, patient-calibrated "
        f"min-p {p:.3g} vs alpha {alpha:g} (the test needs a share ≥ {min_share:g})",
        float(pvals.min()),
        p,
        alpha,
        {"drifted_features": drifted, "drifted_share": share, "null_windows": len(null_minp)},
    )
    return check, per_feature


# --- embeddings -----------------------------------------------------------------------------


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :] - 2.0 * a @ b.T, 0.0)


def median_bandwidth(z: np.ndarray, rng: np.random.Generator) -> float:
    """Median pairwise Euclidean distance (on a seeded subsample); 1.0 when all points coincide."""
    pts = z if len(z) <= _MEDIAN_POINTS else z[rng.choice(len(z), _MEDIAN_POINTS, replace=False)]
    d = np.sqrt(_sq_distances(pts, pts)[np.triu_indices(len(pts), 1)])
    med = float(np.median(d)) if d.size else 0.0
    return med if med > 0 else 1.0


@dataclass(frozen=True)
class KernelReference:
    """The (capped) reference embeddings, their patients, the bandwidth and the kernel matrix."""

    emb: np.ndarray
    groups: np.ndarray
    sigma: float
    kernel: np.ndarray  # float32, m x m, diagonal 1
    row: np.ndarray  # float64 column sums of the kernel
    n_total: int  # reference rows before the cap

    @classmethod
    def build(cls, emb: np.ndarray, groups: np.ndarray, cap: int, rng: np.random.Generator) -> KernelReference:
        keep = np.sort(rng.choice(len(emb), cap, replace=False)) if len(emb) > cap else np.arange(len(emb))
        x = emb[keep].astype(np.float64)
        sigma = median_bandwidth(x, rng)
        kernel = np.exp(-_sq_distances(x, x) / (2 * sigma * sigma))
        return cls(x, groups[keep], sigma, kernel.astype(np.float32), kernel.sum(axis=0), len(emb))


def _mmd_u(sxx: np.ndarray, syy: np.ndarray, sxy: np.ndarray, m: int, n: int) -> np.ndarray:
    """Unbiased MMD² from kernel sums (diagonals included in sxx, syy: the RBF diagonal is 1)."""
    return (sxx - m) / (m * (m - 1)) + (syy - n) / (n * (n - 1)) - 2 * sxy / (m * n)


def mmd_null(kref: KernelReference, n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """MMD² of whole-patient reference windows against the rest, all windows in one matrix product."""
    size = len(kref.emb)
    windows = group_windows(kref.groups, n, count, rng)
    members = np.zeros((size, count), dtype=np.float32)
    for j, w in enumerate(windows):
        members[w, j] = 1.0
    product = (kref.kernel @ members).astype(np.float64)
    m64 = members.astype(np.float64)
    sww = np.einsum("ij,ij->j", m64, product)
    sw = kref.row @ m64
    total = float(kref.row.sum())
    k = m64.sum(axis=0)
    srr, swr = total - 2 * sw + sww, sw - sww
    rest, k = (size - k).astype(int), k.astype(int)
    return _mmd_u(srr, sww, swr, rest, k) * size_scale(rest, k) ** 2


def mmd_check(
    kref: KernelReference, cur: np.ndarray, null: np.ndarray, alpha: float, cap: int, rng: np.random.Generator
) -> CheckResult:
    """Unbiased MMD² of the window against the reference, p from the patient-window null."""
    if cur.ndim != 2 or cur.shape[1] != kref.emb.shape[1]:
        return skipped(
            "embedding_mmd",
            f"embedding sizes differ: reference {kref.emb.shape[1]}, current "
            f"{cur.shape[1] if cur.ndim == 2 else cur.shape}",
        )
    y = (cur if len(cur) <= cap else cur[np.sort(rng.choice(len(cur), cap, replace=False))]).astype(np.float64)
    g = 2 * kref.sigma * kref.sigma
    m, n = len(kref.emb), len(y)
    sxx = float(kref.row.sum())
    syy = float(np.exp(-_sq_distances(y, y) / g).sum())
    sxy = float(np.exp(-_sq_distances(kref.emb, y) / g).sum())
    stat = float(_mmd_u(np.array(sxx), np.array(syy), np.array(sxy), m, n))
    scale = float(size_scale(m, n)) ** 2  # the null is size-scaled (mmd_null)
    p = monte_carlo_p(stat * scale, null)
    return CheckResult(
        "embedding_mmd",
        DRIFT if p <= alpha else NO_DRIFT,
        f"embedding MMD² {stat:.4g}, patient-calibrated p {p:.3g} vs alpha {alpha:g} ({m} reference vs "
        f"{n} current, bandwidth {kref.sigma:.3g}; null 99th pct "
        f"{np.quantile(null, 0.99) / scale:.3g})",
        stat,
        p,
        alpha,
        {
            "n_reference": m,
            "n_current": n,
            "bandwidth": kref.sigma,
            "null_windows": len(null),
            "subsampled": bool(kref.n_total > m or len(cur) > n),
        },
    )


# --- predicted classes and confidence ---------------------------------------------------------


def chi2_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson chi-square of the 2 x k table [a; b] (columns empty in both dropped)."""
    table = np.vstack([a, b]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    return float(((table - expected) ** 2 / expected).sum())


def class_null(
    codes: np.ndarray, k: int, groups: np.ndarray, n: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    return np.array(
        [
            chi2_statistic(np.bincount(codes[_rest(len(codes), w)], minlength=k), np.bincount(codes[w], minlength=k))
            for w in group_windows(groups, n, count, rng)
        ]
    )


def class_mix_check(ref: Sequence[str], cur: Sequence[str], null: np.ndarray, alpha: float) -> CheckResult:
    """Chi-square statistic of the predicted-class table, p from the patient-window null."""
    classes = sorted(set(ref) | set(cur))
    index = {c: i for i, c in enumerate(classes)}
    a = np.bincount([index[c] for c in ref], minlength=len(classes))
    b = np.bincount([index[c] for c in cur], minlength=len(classes))
    stat = chi2_statistic(a, b)
    p = monte_carlo_p(stat, null)
    shares = (a / max(1, a.sum())), (b / max(1, b.sum()))
    moved = int(np.argmax(np.abs(shares[1] - shares[0])))
    return CheckResult(
        "class_mix",
        DRIFT if p <= alpha else NO_DRIFT,
        f"predicted-class mix chi² {stat:.3g}, patient-calibrated p {p:.3g} vs alpha {alpha:g}; "
        f"largest move: {classes[moved]} {shares[0][moved]:.0%} → {shares[1][moved]:.0%}",
        stat,
        p,
        alpha,
        {
            "classes": classes,
            "reference_share": shares[0].round(4).tolist(),
            "current_share": shares[1].round(4).tolist(),
            "null_windows": len(null),
        },
    )


def scaled_ks(ref: np.ndarray, cur: np.ndarray) -> float:
    """The two-sample KS statistic of two 1-d samples times size_scale (a null and a window compare)."""
    return float(ks_statistics(ref.reshape(-1, 1), cur.reshape(-1, 1))[0] * size_scale(len(ref), len(cur)))


def ks_null(values: np.ndarray, groups: np.ndarray, n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Size-scaled KS statistic of each whole-patient window of one column against the rest."""
    return window_null(values, groups, n, count, rng, lambda r, w: np.array([scaled_ks(r, w)]))[:, 0]


def window_null(
    values: np.ndarray,
    groups: np.ndarray,
    n: int,
    count: int,
    rng: np.random.Generator,
    statistics: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """`statistics(rest, window)` (a vector) of `count` whole-patient windows of n rows, each against
    the rest of the reference: one row per window."""
    return np.array(
        [statistics(values[_rest(len(values), w)], values[w]) for w in group_windows(groups, n, count, rng)]
    )


def calibrated_min_p(observed: np.ndarray, null: np.ndarray) -> tuple[float, np.ndarray]:
    """(family p, per-statistic p) of several statistics of one window (larger = more extreme).

    Each statistic's p comes from its own column of `null` (rows: the calibration windows); the
    family p is the share of calibration windows whose own smallest p (each against the other
    windows) is at most the window's smallest: Westfall-Young min-p, which keeps the family at its
    level however correlated the statistics are, and loses little to the best of them."""
    per = np.array([monte_carlo_p(float(o), null[:, j]) for j, o in enumerate(observed)])
    ordered = np.sort(null, axis=0)
    # per window and statistic: how many other windows are at least as extreme (itself left out)
    others = np.column_stack(
        [len(null) - np.searchsorted(ordered[:, j], null[:, j], "left") - 1 for j in range(null.shape[1])]
    )
    own_min = ((1 + others) / len(null)).min(axis=1)
    return float((1 + np.sum(own_min <= per.min())) / (len(null) + 1)), per


def confidence_check(ref: np.ndarray, cur: np.ndarray, null: np.ndarray, alpha: float) -> CheckResult:
    """Two-sample KS statistic of the calibrated confidence, p from the patient-window null (ks_null)."""
    stat = float(ks_statistics(ref.reshape(-1, 1), cur.reshape(-1, 1))[0])
    p = monte_carlo_p(scaled_ks(ref, cur), null)
    return CheckResult(
        "confidence",
        DRIFT if p <= alpha else NO_DRIFT,
        f"calibrated confidence KS {stat:.3g}, patient-calibrated p {p:.3g} vs alpha {alpha:g}; "
        f"median {np.median(ref):.3f} → {np.median(cur):.3f}",
        stat,
        p,
        alpha,
        {"reference_median": float(np.median(ref)), "current_median": float(np.median(cur)), "null_windows": len(null)},
    )


# --- feedback -------------------------------------------------------------------------------


def cusum_check(correct: Sequence[bool], cfg: CusumConfig) -> CheckResult:
    """Bernoulli CUSUM over the error flags (oldest first); alarm once S_t passes h."""
    errors = 1.0 - np.asarray(correct, dtype=float)
    if cfg.target_error is None:
        if len(errors) <= cfg.warmup:
            return skipped(
                "error_cusum",
                f"{len(errors)} reviewed item(s): the target error is estimated from "
                f"the first {cfg.warmup}, and more are needed to monitor it",
            )
        target, source = float(errors[: cfg.warmup].mean()), f"first {cfg.warmup} reviews"
        watched = errors[cfg.warmup :]
    else:
        if len(errors) == 0:
            return skipped("error_cusum", "no reviewed feedback yet")
        target, source, watched = cfg.target_error, "params", errors
    path = np.zeros(len(watched))
    s = 0.0
    for i, e in enumerate(watched):
        s = max(0.0, s + e - target - cfg.k)
        path[i] = s
    crossed = np.flatnonzero(path > cfg.h)
    alarm = int(crossed[0]) if crossed.size else None
    detail = {
        "target_error": target,
        "target_from": source,
        "n_monitored": int(len(watched)),
        "recent_error": float(watched.mean()),
        "final": float(path[-1]),
        "alarm_at": alarm,
    }
    if alarm is None:
        return CheckResult(
            "error_cusum",
            NO_DRIFT,
            f"feedback error CUSUM max {path.max():.3g} ≤ h {cfg.h:g} over {len(watched)} review(s) "
            f"(target error {target:.0%} from {source}, k {cfg.k:g})",
            float(path.max()),
            None,
            cfg.h,
            detail,
        )
    return CheckResult(
        "error_cusum",
        DRIFT,
        f"feedback error CUSUM passed h {cfg.h:g} at review {alarm + 1} of {len(watched)}: error "
        f"rate {watched.mean():.0%} vs target {target:.0%} ({source}, k {cfg.k:g})",
        float(path.max()),
        None,
        cfg.h,
        detail,
    )
