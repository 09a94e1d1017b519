"""Simulation tests: the 95 % intervals cover the population value about 95 % of the time.

Each test draws 200 batches from a fixed population, computes the intervals and counts how
often they contain the truth (computed analytically or from a very large sample). With 200
batches the coverage of a correct 95 % interval lies in [0.90, 0.99] with probability > 0.99.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit, softmax

from perfkit.metrics import compute_metrics, compute_state, evaluate, merge_states
from perfkit.metrics.intervals import wilson_interval

BATCHES = 200
LO, HI = 0.90, 0.99


def coverage(hits: list[bool]) -> float:
    return float(np.mean(hits))


# --------------------------------------------------------------------------- classification
PRIOR = np.array([0.5, 0.3, 0.2])


def draw_multiclass(rng: np.random.Generator, n: int):
    y = rng.choice(3, size=n, p=PRIOR)
    proba = softmax(rng.normal(size=(n, 3)) + 1.2 * np.eye(3)[y], axis=1)
    return y, proba.argmax(axis=1), proba


@pytest.fixture(scope="module")
def multiclass_truth() -> dict[str, float]:
    """Population values from 2e6 rows (their own error is ~1e-3 of an interval's width)."""
    y, pred, proba = draw_multiclass(np.random.default_rng(12345), 2_000_000)
    s = compute_state(y, pred, proba)
    return {k: v.value for k, v in evaluate(s, n_boot=10).items()}


def test_multiclass_coverage(multiclass_truth):
    rng = np.random.default_rng(1)
    names = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "log_loss")
    hits: dict[str, list[bool]] = {k: [] for k in names}
    for _ in range(BATCHES):
        y, pred, proba = draw_multiclass(rng, 500)
        rep = compute_metrics(y, pred, proba, metrics=names, n_boot=500)
        for k in names:
            hits[k].append(rep[k].ci_lower <= multiclass_truth[k] <= rep[k].ci_upper)
    cov = {k: coverage(v) for k, v in hits.items()}
    assert all(LO <= c <= HI for c in cov.values()), str(cov)


def test_binary_auc_coverage_score_interval_and_histograms():
    d = 1.2
    truth = float(stats.norm.cdf(d / math.sqrt(2)))  # binormal AUC
    rng = np.random.default_rng(2)
    hits: dict[str, list[bool]] = {"large": [], "small": [], "histogram": []}
    for _ in range(BATCHES):
        for n, key in ((600, "large"), (150, "small")):
            y = (rng.random(n) < 0.3).astype(int)
            s = expit(rng.normal(size=n) + d * y)
            state = compute_state(y, None, s)
            auc = evaluate(state, metrics=["roc_auc"])["roc_auc"]
            assert auc.method == "score_delong"
            hits[key].append(auc.ci_lower <= truth <= auc.ci_upper)
            if key == "large":  # the same batch as three merged parts (histogram DeLong)
                parts = np.array_split(np.arange(n), 3)
                merged = merge_states([compute_state(y[i], None, s[i], classes=[0, 1]) for i in parts])
                m = evaluate(merged, metrics=["roc_auc"])["roc_auc"]
                hits["histogram"].append(m.ci_lower <= truth <= m.ci_upper)
    cov = {k: coverage(v) for k, v in hits.items()}
    assert all(LO <= c <= HI for c in cov.values()), str(cov)


def test_binary_positive_class_wilson_coverage():
    # y ~ Bernoulli(0.4); prediction correct with probability 0.8 -> P(pred = 1 | y = 1) = 0.8
    rng = np.random.default_rng(3)
    p_pos, acc = 0.4, 0.8
    truth = {
        "accuracy": acc,
        "recall": acc,
        "precision": p_pos * acc / (p_pos * acc + (1 - p_pos) * (1 - acc)),
    }
    hits: dict[str, list[bool]] = {k: [] for k in truth}
    for _ in range(BATCHES):
        y = (rng.random(400) < p_pos).astype(int)
        pred = np.where(rng.random(400) < acc, y, 1 - y)
        rep = compute_metrics(y, pred, metrics=list(truth))
        for k, t in truth.items():
            hits[k].append(rep[k].ci_lower <= t <= rep[k].ci_upper)
            if k == "accuracy":
                assert rep[k].method == "wilson"
    cov = {k: coverage(v) for k, v in hits.items()}
    assert all(LO <= c <= HI for c in cov.values()), str(cov)


def test_wilson_interval_is_statsmodels_formula():
    # closed form check (statsmodels.stats.proportion.proportion_confint(method="wilson"))
    lo, hi = wilson_interval(37, 50, 0.95)
    z = stats.norm.ppf(0.975)
    p, n = 37 / 50, 50
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (lo, hi) == pytest.approx((centre - half, centre + half), rel=1e-12)


# --------------------------------------------------------------------------- regression
def test_regression_coverage_normal_errors():
    # y = 3 + x + u, yhat = 3.1 + 0.8 x with x, u ~ N(0, 1): e ~ N(-0.1, 1.04)
    mu, sigma2 = -0.1, 1.04
    sigma = math.sqrt(sigma2)
    mse = mu * mu + sigma2
    mae = sigma * math.sqrt(2 / math.pi) * math.exp(-mu * mu / (2 * sigma2)) + mu * (
        1 - 2 * stats.norm.cdf(-mu / sigma)
    )
    truth = {"mse": mse, "rmse": math.sqrt(mse), "mae": mae, "r2": 1 - mse / 2.0}
    rng = np.random.default_rng(4)
    hits: dict[str, list[bool]] = {k: [] for k in truth}
    merged_hits: list[bool] = []
    for _ in range(BATCHES):
        n = 500
        x = rng.normal(size=n)
        y = 3 + x + rng.normal(size=n)
        yhat = 3.1 + 0.8 * x
        rep = compute_metrics(y, yhat, metrics=list(truth))
        for k, t in truth.items():
            hits[k].append(rep[k].ci_lower <= t <= rep[k].ci_upper)
        parts = np.array_split(np.arange(n), 4)
        r2 = evaluate(merge_states([compute_state(y[i], yhat[i]) for i in parts]), metrics=["r2"])["r2"]
        merged_hits.append(r2.ci_lower <= truth["r2"] <= r2.ci_upper)
    cov = {k: coverage(v) for k, v in hits.items()}
    cov["r2_merged"] = coverage(merged_hits)
    assert all(LO <= c <= HI for c in cov.values()), str(cov)


def test_heavy_tailed_errors_are_flagged():
    rng = np.random.default_rng(5)
    y = rng.normal(size=2000)
    rep = compute_metrics(y, y + rng.standard_t(3, size=2000), metrics=["mse", "rmse", "r2"])
    assert rep["mse"].reason.startswith("heavy_tailed:tail_index=")
    assert rep["rmse"].reason == rep["mse"].reason == rep["r2"].reason
    assert rep["mse"].method == "hill_tail_mean"
    rep = compute_metrics(y, y + rng.normal(size=2000), metrics=["mse", "r2"])
    assert rep["mse"].reason is None and rep["r2"].reason is None


def test_intervals_contain_the_value_and_respect_bounds():
    rng = np.random.default_rng(6)
    y, pred, proba = draw_multiclass(rng, 300)
    for rep in (
        compute_metrics(y, pred, proba),
        compute_metrics(y[:40] == 0, pred[:40] == 0, proba[:40, 0]),
        compute_metrics(rng.normal(size=50), rng.normal(size=50)),
    ):
        for mv in rep.values():
            if math.isfinite(mv.ci_lower):
                assert mv.ci_lower <= mv.value <= mv.ci_upper, mv
            assert mv.level == 0.95
    narrow = compute_metrics(y, pred, proba, level=0.5)["accuracy"]
    wide = compute_metrics(y, pred, proba, level=0.99)["accuracy"]
    assert wide.ci_lower < narrow.ci_lower < narrow.ci_upper < wide.ci_upper


@pytest.mark.parametrize(("auc", "m", "n"), [(1.0, 10, 40), (0.0, 10, 40), (1.0, 3, 5), (0.97, 30, 60)])
def test_newcombe_interval_has_width_at_the_boundary(auc, m, n):
    from perfkit.metrics.intervals import newcombe_auc_interval

    lo, hi = newcombe_auc_interval(auc, m, n)
    assert 0.0 <= lo <= auc <= hi <= 1.0
    assert hi - lo > 0.01


def test_perfect_separation_small_batch_has_an_interval():
    auc = compute_metrics([0] * 20 + [1] * 10, [0] * 20 + [1] * 10, [0.1] * 20 + [0.9] * 10)["roc_auc"]
    assert auc.value == 1.0 and auc.method == "score_delong"
    assert auc.ci_lower < 0.95 and auc.ci_upper == 1.0


# --------------------------------------------------------------------------- hard data
# Scenarios and the percentile-bootstrap baseline live in benchmarks/coverage.py (one
# definition); these seeded runs are small versions of its hardest cells. The previous
# methods measured 0.18-0.76 (rare positives), 0.41-0.88 (AUC 0.99 at n = 50), 0.67-0.80
# (t(3) errors) and 0.85 (MAPE near zero) on the same cells: each bound below fails then.
def _coverage_module():
    import importlib.util
    import pathlib
    import sys

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "coverage.py"
    spec = importlib.util.spec_from_file_location("perfkit_coverage_benchmark", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def cov():
    return _coverage_module()


def _cell(cov, name, n, reps, metrics, *, merged=False):
    out = cov.run_cell(name, n, reps, seed=7, baseline=False, merged=merged, n_boot=500)
    return {r["metric"]: r for r in out["rows"] if r["metric"] in metrics}


def test_rare_positives_f1_and_macro_cover(cov):
    rows = _cell(cov, "rare", 1000, 300, ("f1", "precision", "recall", "precision_macro", "recall_macro",
                                          "f1_macro", "log_loss", "roc_auc"))
    got = {m: r["cov_one"] for m, r in rows.items()}
    assert all(0.91 <= c <= 0.99 for c in got.values()), got
    rows = _cell(cov, "rare", 200, 300, ("f1", "precision_macro", "recall_macro", "f1_macro"))
    got = {m: r["cov_one"] for m, r in rows.items()}
    assert all(c >= 0.89 for c in got.values()), got


def test_auc_near_one_small_batch_covers(cov):
    rows = _cell(cov, "auc99", 50, 300, ("accuracy", "f1", "precision_macro", "recall_macro", "f1_macro",
                                         "roc_auc", "log_loss"))
    got = {m: r["cov_one"] for m, r in rows.items()}
    assert all(0.91 <= c <= 0.995 for c in got.values()), got


def test_auc_near_one_score_interval_not_over_covering(cov):
    """AUC 0.99 at 50 rows (15 positives) and 200 rows, 3,000 batches each (cheap: exact AUC).

    The equal-tailed score interval read 0.977 / 0.973 on this seed: at 50 rows the lower
    arm cannot miss (a perfect AUC in 24 % of samples), and at 200 rows counting only the
    rarer class's rows shrank the variance ratio too much. 1 % positives stay in the band."""
    for name, n, reps in (("auc99", 50, 3000), ("auc99", 200, 3000), ("rare", 1000, 600)):
        row = cov.run_cell(name, n, reps, seed=8, baseline=False, merged=False, metrics=("roc_auc",))["rows"][0]
        assert 0.93 <= row["cov_one"] <= 0.965, row


def test_auc_score_interval_moves_alpha_only_where_the_lower_arm_cannot_miss():
    from perfkit.metrics.intervals import (
        _edge_bounds,
        _hanley_mcneil_var,
        _score_bounds,
        auc_score_interval,
        z_value,
    )

    m, n = 15, 35
    rows = m * (1 + m / n) ** 2 / (1 + (m / n) ** 3)
    top, bottom = _edge_bounds(m, n, z_value(0.95), 20.0 / (rows + 20.0))
    assert 0.9 < top < 0.99 and bottom == pytest.approx(1 - top)
    # no sample's lower bound exceeds top: any AUC below 1, any DeLong variance
    for auc in np.linspace(0.5, 1 - 1 / (m * n), 60):
        for var in (1e-9, 1e-5, 1e-3):
            assert auc_score_interval(auc, var, m, n)[0] <= top + 1e-12
    # high AUC: the upper bound is one-sided (shorter) but never below top or the estimate
    lo, hi = auc_score_interval(0.97, 3e-4, m, n)
    r = (rows * 3e-4 / _hanley_mcneil_var(0.97, m, n) + 20) / (rows + 20)
    lo2, hi2 = _score_bounds(0.97, m, n, z_value(0.95), r)
    assert 0.97 < hi < hi2 and hi >= min(hi2, top) and lo == pytest.approx(lo2)
    # mirrored near 0; unchanged in the middle and at many rows
    a, b = auc_score_interval(0.03, 3e-4, m, n), auc_score_interval(0.97, 3e-4, m, n)
    assert a == pytest.approx((1 - b[1], 1 - b[0]))
    r_mid = (rows * 0.003 / _hanley_mcneil_var(0.7, m, n) + 20) / (rows + 20)
    assert auc_score_interval(0.7, 0.003, m, n) == pytest.approx(_score_bounds(0.7, m, n, z_value(0.95), r_mid))


@pytest.mark.parametrize("scenario, n", [("balanced", 50), ("balanced", 200), ("5class", 200)])
def test_accuracy_wilson_exact_coverage_in_goal_band(cov, scenario, n):
    """Exact binomial coverage of the accuracy interval at the benchmark's population value.

    300-replication runs read 97.3-97.7 % (balanced, 50 rows) and 92.7 % (5-class, 200 rows);
    the exact coverage is inside 93-97 % (2,000 replications agree: 95.7 % and 95.1 %)."""
    p = cov.truth(scenario)["accuracy"]
    x = np.arange(n + 1)
    bounds = np.array([wilson_interval(k, n) for k in x])
    exact = stats.binom.pmf(x, n, p)[(bounds[:, 0] <= p) & (p <= bounds[:, 1])].sum()
    assert 0.93 <= exact <= 0.97, (scenario, n, p, exact)


def test_t3_errors_tail_aware_intervals(cov):
    rows = _cell(cov, "t3", 2000, 150, ("mse", "rmse", "r2", "mae", "median_absolute_error"))
    got = {m: r["cov_one"] for m, r in rows.items()}
    assert all(c >= 0.87 for c in got.values()), got
    assert rows["mse"]["reasons"].get("heavy_tailed", 0) >= 0.9 * 150


def test_mape_near_zero_targets_small_batch(cov):
    rows = _cell(cov, "near_zero", 50, 400, ("mape", "mae", "mse"))
    got = {m: r["cov_one"] for m, r in rows.items()}
    assert all(c >= 0.91 for c in got.values()), got


def _skewed_mean_coverage(draw, n, reps, truth, seed):
    from perfkit.metrics.intervals import skew_corrected_interval

    rng = np.random.default_rng(seed)
    x = draw(rng, (reps, n))
    mean = x.mean(1)
    d = x - mean[:, None]
    m2, m3, m4 = (d**2).sum(1), (d**3).sum(1), (d**4).sum(1)
    hits = 0
    for i in range(reps):
        lo, hi, _ = skew_corrected_interval(n, mean[i], m2[i], m3[i], 0.95, m4=m4[i])
        hits += lo <= truth <= hi
    return hits / reps


def test_skew_corrected_interval_kurtosis_df_on_percentage_errors():
    """Absolute percentage errors of targets uniform on [0.02, 1], n = 50 (4,000 samples).

    Hall's correction alone (t on n - 1 df) measured 0.910 here; with the kurtosis-adjusted
    degrees of freedom 0.934 (goal 93-97 %). Normal data keep n - 1 df (0.95).
    """
    truth = 0.1 * math.sqrt(2 / math.pi) * math.log(50) / 0.98

    def ape(rng, size):
        return 0.1 * np.abs(rng.normal(size=size)) / rng.uniform(0.02, 1.0, size=size)

    c = _skewed_mean_coverage(ape, 50, 4000, truth, 1313)
    assert 0.925 <= c <= 0.97, c
    c = _skewed_mean_coverage(lambda rng, size: rng.normal(1.0, 1.0, size=size), 50, 2000, 1.0, 1314)
    assert 0.935 <= c <= 0.965, c


def test_rare_class_log_loss_covers_at_n_1000():
    """1 % positives, 1,000 rows (10 expected positives): log loss in 93-97 % (3,000 batches)."""

    def loss(rng, size):
        y = rng.random(size) < 0.01
        p = expit(rng.normal(size=size) + 3.0 * (y - 0.5) - 1.0)
        return np.where(y, -np.log(p), -np.log1p(-p))

    truth = float(loss(np.random.default_rng(99), (2_000_000,)).mean())
    c = _skewed_mean_coverage(loss, 1000, 3000, truth, 1315)
    assert 0.935 <= c <= 0.97, c


def _five_class(rng, n):
    y = rng.choice(5, size=n, p=[0.35, 0.25, 0.2, 0.12, 0.08])
    proba = softmax(rng.normal(size=(n, 5)) + 1.5 * np.eye(5)[y], axis=1)
    return y, proba.argmax(1), proba


def test_merged_macro_auc_variance_from_pair_counts():
    """A window's macro-AUC standard error follows from its merged state, however it was cut.

    One batch of 1,000 rows has the exact per-row influence variance; the same rows as 5 x
    200 or 50 x 20 rows merge into one state and the same standard error (the n-weighted
    ratio of tiny batches it replaces was biased low: 86 % coverage at 10 x 5).
    """
    rng = np.random.default_rng(1316)
    y, pred, proba = _five_class(rng, 1000)
    classes = list(range(5))
    one = evaluate(compute_state(y, pred, proba, classes=classes), metrics=["roc_auc"])["roc_auc"]
    ses = []
    for parts in (5, 50):
        idx = np.array_split(np.arange(1000), parts)
        merged = merge_states([compute_state(y[i], pred[i], proba[i], classes=classes) for i in idx])
        assert merged.auc_pair_counts is not None and merged.auc_pair_counts.sum() == 1000 * 10
        ses.append(evaluate(merged, metrics=["roc_auc"])["roc_auc"].se)
    assert ses[0] == pytest.approx(ses[1], rel=1e-9)
    assert ses[0] == pytest.approx(one.se, rel=0.02)


def test_pair_counts_round_trip_align_and_old_dicts():
    from perfkit.metrics.state import align_classes, merge_dicts_to_state, state_from_dict

    rng = np.random.default_rng(1317)
    y, pred, proba = _five_class(rng, 300)
    parts = [compute_state(y[i], pred[i], proba[i], classes=list(range(5)))
             for i in np.array_split(np.arange(300), 3)]
    merged = merge_states(parts)
    assert state_from_dict(merged.to_dict()).equals(merged)
    fast = merge_dicts_to_state([p.to_dict() for p in parts])
    assert np.array_equal(fast.auc_pair_counts, merged.auc_pair_counts)
    # a dict stored before the field existed loads, merges and falls back to the batch ratio
    old = parts[0].to_dict()
    del old["auc_pair_counts"]
    mixed = merge_dicts_to_state([old, parts[1].to_dict()])
    assert mixed.auc_pair_counts is None and math.isfinite(evaluate(mixed, metrics=["roc_auc"])["roc_auc"].se)
    # a growing label set: pairs of the old classes keep their counts (class order kept)
    grown = align_classes(parts[0], [0, 1, 2, 3, 4, 5])
    assert grown.auc_pair_counts.shape[0] == 15 and grown.auc_pair_counts.sum() == parts[0].auc_pair_counts.sum()
    # a pair whose order flips swaps its groups and cell axes
    from perfkit.metrics._auc_cov import align_pair_counts, pair_index

    flipped = align_pair_counts(parts[0].auc_pair_counts[[pair_index(0, 1, 5)]], np.array([1, 0]), 2)
    block = parts[0].auc_pair_counts[pair_index(0, 1, 5)]
    assert np.array_equal(flipped[0, 0], block[1].T) and np.array_equal(flipped[0, 2], block[2].T)


@pytest.mark.slow
def test_merged_five_class_auc_coverage(cov):
    """10 batches of 20 rows, 5 classes: merged coverage (the n-weighted ratio measured 0.90)."""
    rows = _cell(cov, "5class", 200, 200, ("roc_auc",), merged=True)
    assert rows["roc_auc"]["cov_merged"] >= 0.915, rows["roc_auc"]


def test_balanced_width_close_to_percentile_bootstrap(cov):
    out = cov.run_cell("balanced", 1000, 60, seed=3, merged=False, n_boot=500)
    ratios = {r["metric"]: r["width_one"] / r["width_pct"] for r in out["rows"]}
    assert all(r <= 1.15 for r in ratios.values()), ratios


@pytest.mark.slow
def test_full_coverage_matrix(cov):
    """The whole matrix of benchmarks/coverage.py at 300 replications (150 at n = 10,000).

    Tolerances allow the simulation's own error (about 1.3 % at 300 replications) and the
    over-coverage that discreteness forces on small batches (up to 99 %).
    """
    bad = []
    for name in cov.SCENARIOS:
        for n in cov.NS:
            reps = 300 if n < 10_000 else 150
            for row in cov.run_cell(name, n, reps, seed=11, baseline=False)["rows"]:
                goal = cov.goal(row)
                for kind in ("one", "merged"):
                    c = row[f"cov_{kind}"]
                    if not math.isfinite(c) or goal == "-":
                        continue
                    lo, hi = {"93-97": (0.91, 0.99), ">=90": (0.88, 1.0), ">=88": (0.86, 1.0)}[goal]
                    known = (name, row["metric"], kind) in KNOWN_GAPS or (name, n, row["metric"]) in KNOWN_GAPS
                    if not lo <= c <= hi and not known:
                        bad.append((name, n, row["metric"], kind, round(c, 3), goal))
    assert not bad, bad


#: cells outside their goal:
#: - R2 of 50 rows with targets near zero: influence-function t interval, 0.91-0.95 by seed
KNOWN_GAPS: set = {("near_zero", 50, "r2")}


# --------------------------------------------------------------------------- zero cells
def test_zero_cells_never_collapse():
    # every prediction right: confusion cells off the diagonal are zero
    y = np.array([0] * 40 + [1] * 10)
    rep = compute_metrics(y, y, np.where(y == 1, 0.9, 0.1))
    for name in ("accuracy", "precision", "recall", "f1", "precision_macro", "recall_macro", "f1_macro", "roc_auc"):
        mv = rep[name]
        assert mv.value == 1.0, name
        assert mv.ci_lower < 1.0 and mv.ci_upper == pytest.approx(1.0), (name, mv)
    # no true positive: F1, precision and recall are 0 with an upper bound above 0
    pred = np.where(y == 1, 0, 1)
    rep = compute_metrics(y, pred)
    for name in ("precision", "recall", "f1", "precision_macro", "recall_macro", "f1_macro", "accuracy"):
        mv = rep[name]
        assert mv.value == 0.0 and mv.ci_lower == 0.0 and mv.ci_upper > 0.02, (name, mv)
    # the positive class never predicted nor present: nothing is known about its precision
    rep = compute_metrics(np.zeros(30, int), np.zeros(30, int), classes=[0, 1])
    assert (rep["precision"].ci_lower, rep["precision"].ci_upper) == (0.0, 1.0)
    assert rep["precision"].reason == "precision_zero_division"
    # a 5-class batch with an empty class keeps wide intervals for the macro metrics
    rng = np.random.default_rng(0)
    y5 = rng.integers(0, 4, 60)
    rep = compute_metrics(y5, y5, classes=[0, 1, 2, 3, 4])
    for name in ("precision_macro", "recall_macro", "f1_macro"):
        assert rep[name].ci_upper - rep[name].ci_lower > 0.01, name


def test_f1_interval_is_the_jaccard_binomial():
    from perfkit.metrics.intervals import f1_interval

    lo, hi = f1_interval(6, 4)  # J = 6 / 10
    jl, jh = wilson_interval(6, 10)
    assert (lo, hi) == pytest.approx((2 * jl / (1 + jl), 2 * jh / (1 + jh)))
    assert lo < 2 * 6 / (2 * 6 + 4) < hi


def test_modified_wilson_minimum_coverage():
    # exact binomial coverage over a grid of p: plain Wilson dips to ~0.84, the modified one not
    z_cov = []
    for n in (20, 50, 200):
        x = np.arange(n + 1)
        bounds = np.array([wilson_interval(k, n) for k in x])
        plain = np.array([wilson_interval(k, n, boundary=False) for k in x])
        for p in np.linspace(0.001, 0.999, 400):
            pmf = stats.binom.pmf(x, n, p)
            z_cov.append((pmf[(bounds[:, 0] <= p) & (p <= bounds[:, 1])].sum(),
                          pmf[(plain[:, 0] <= p) & (p <= plain[:, 1])].sum()))
    mod, plain = np.array(z_cov).T
    assert mod.min() >= 0.915 and plain.min() < 0.86


# --------------------------------------------------------------------------- |e| quantiles
@pytest.mark.parametrize("seed", range(5))
def test_absolute_error_quantiles_match_numpy(seed):
    from sklearn.metrics import median_absolute_error

    from perfkit.metrics._abs_hist import REL_ERROR

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    scale = 10.0 ** rng.uniform(-200, 200)
    y = rng.standard_t(2, n) * scale
    yhat = np.where(rng.random(n) < 0.1, y, y + rng.normal(size=n) * scale)  # exact zeros too
    rep = compute_metrics(y, yhat, metrics=["median_absolute_error", "p90_absolute_error"])
    med, p90 = rep["median_absolute_error"], rep["p90_absolute_error"]
    ref_med = median_absolute_error(y, yhat)
    ref_p90 = float(np.quantile(np.abs(y - yhat), 0.9))
    assert abs(med.value - ref_med) <= REL_ERROR * ref_med
    assert abs(p90.value - ref_p90) <= REL_ERROR * ref_p90
    assert med.error_bound == pytest.approx(REL_ERROR * med.value)
    assert med.ci_lower <= med.value <= med.ci_upper and p90.ci_lower <= p90.value <= p90.ci_upper
    # merged parts give the same histogram, hence the same values and intervals
    parts = np.array_split(np.arange(n), 4)
    merged = merge_states([compute_state(y[i], yhat[i]) for i in parts if i.size])
    again = evaluate(merged, metrics=["median_absolute_error", "p90_absolute_error"])
    for name in ("median_absolute_error", "p90_absolute_error"):
        a, b = again[name], rep[name]
        assert (a.value, a.ci_lower, a.ci_upper) == (b.value, b.ci_lower, b.ci_upper)


def test_absolute_error_histogram_round_trip_and_old_states():
    from perfkit.metrics import state_from_dict

    rng = np.random.default_rng(1)
    s = compute_state(rng.normal(size=500), rng.normal(size=500))
    d = s.to_dict()
    back = state_from_dict(d)
    assert back.equals(s)
    np.testing.assert_array_equal(back.ae_hist.counts, s.ae_hist.counts)
    assert back.ae_hist.n == 500
    old = {k: v for k, v in d.items() if k != "ae_hist"}  # a state stored before the histogram
    rep = evaluate(state_from_dict(old), metrics=["median_absolute_error", "mse"])
    assert math.isnan(rep["median_absolute_error"].value)
    assert rep["median_absolute_error"].reason == "no_error_histogram"
    assert rep["mse"].value == pytest.approx(evaluate(s, metrics=["mse"])["mse"].value)
    # merging with an old state drops the histogram (it cannot be rebuilt)
    assert merge_states([s, state_from_dict(old)]).ae_hist is None


def test_quantile_interval_coverage_normal_errors():
    rng = np.random.default_rng(9)
    truth = stats.norm.ppf(0.75)  # median of |N(0, 1)|
    hits = []
    for _ in range(BATCHES):
        e = rng.normal(size=300)
        mv = compute_metrics(e, np.zeros(300), metrics=["median_absolute_error"])["median_absolute_error"]
        hits.append(mv.ci_lower <= truth <= mv.ci_upper)
    assert LO <= coverage(hits) <= 0.995


def test_sql_abs_bucket_equals_kernel_on_edge_values():
    duckdb = pytest.importorskip("duckdb")
    import pandas as pd

    from perfkit.engines._sql import abs_bin_expr
    from perfkit.metrics._kernels import abs_error_hist

    rng = np.random.default_rng(3)
    pw = 2.0 ** np.arange(-1074, 1024, 7, dtype=float)
    x = np.concatenate([[0.0, 5e-324, 2.0**-1022, np.nextafter(2.0**-1022, 0), 1.0, 1.5, 1e308],
                        pw, np.nextafter(pw, 0), np.nextafter(pw, np.inf), 10.0 ** rng.uniform(-300, 300, 3000)])
    x = x[np.isfinite(x)]
    rel = duckdb.from_df(pd.DataFrame({"x": x, "i": np.arange(x.size)}))
    got = rel.query("t", f"SELECT {abs_bin_expr('x')} AS b, COUNT(*) AS n FROM t GROUP BY b ORDER BY b").df()
    ids, counts = abs_error_hist(x, np.zeros_like(x))
    np.testing.assert_array_equal(got["b"].to_numpy(), ids)
    np.testing.assert_array_equal(got["n"].to_numpy(), counts)


@pytest.mark.parametrize("k", [3, 4, 5, 6, 7])
def test_the_compiled_macro_prf_of_draws_has_numpys_bits(k):
    """The bootstrap's macro P / R / F1 of every draw (``_kernels.macro_prf_draws``) is the
    numpy formula's result bit for bit, with empty classes and both zero_division values;
    the per-k check that picks the kernel says so on this machine."""
    from perfkit.metrics import _kernels
    from perfkit.metrics.intervals import dirichlet_confusion, macro_prf
    from perfkit.metrics.registry import _prf_kernel_exact

    assert _prf_kernel_exact(k)
    rng = np.random.default_rng(100 + k)
    cm = rng.integers(0, 30, (k, k))
    cm[1, :] = 0  # a class with no rows
    cm[:, 2] = 0  # and one never predicted
    for draws in (dirichlet_confusion(cm, 500, 3), np.zeros((4, k, k)),
                  rng.integers(0, 3, (300, k, k)).astype(np.float64)):
        for zd in (0.0, 1.0):
            want = macro_prf(draws, np.ones(k, dtype=bool), zd)
            got = _kernels.macro_prf_draws(np.ascontiguousarray(draws), zd)
            assert np.array_equal(got.view(np.int64), want.view(np.int64))
