"""The one decision core: references, invariances, and tracker == replay == explorer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import score_test_proportions_2indep

from perfkit import ModelPerformanceTracker
from perfkit.analysis import adjust_pvalues, decide, replay, score_test_diff, threshold_value
from perfkit.config import DetectionSettings, parse_config
from perfkit.metrics import METRICS, get_metric, threshold_metric
from perfkit.metrics.registry import TEST_KINDS, WINDOW_KINDS

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


# ---------------------------------------------------------------- references
# statsmodels' MN variance root takes arccos/sqrt of edge values it then discards
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning:statsmodels")
def test_score_test_equals_statsmodels_on_random_counts():
    rng = np.random.default_rng(11)
    for _ in range(300):
        n1, n0 = rng.integers(5, 5000, 2)
        c1, c0 = rng.integers(0, n1 + 1), rng.integers(0, n0 + 1)
        value = rng.uniform(-0.3, 0.3)
        want = score_test_proportions_2indep(c1, n1, c0, n0, value=value, compare="diff")[0]
        got, _ = score_test_diff(c1, n1, c0, n0, value)
        if np.isfinite(want):
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("method", ["fdr_bh", "fdr_by", "holm", "bonferroni"])
def test_adjustment_equals_statsmodels(method):
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = rng.random(rng.integers(1, 12)) ** 2
        want = multipletests(p, method=method)[1]
        assert adjust_pvalues(p[None, :], method)[0] == pytest.approx(want, rel=1e-12)


def _block_simes_reference(out: pd.DataFrame) -> np.ndarray:
    """The call's gate from statsmodels, written from the definition: Simes (BH's smallest
    adjusted p) inside each (segment, scope) block, weighted Bonferroni across blocks, with
    the whole model's rows sharing half of the weight when segments are present."""
    t = out[np.isfinite(out["p_value"].astype(float))].copy()
    t["seg"] = t["segment"].fillna("<all>")
    m = len(t)
    m_all = int((t["seg"] == "<all>").sum())
    split = 0 < m_all < m
    gate = np.inf
    for (seg, _scope), blk in t.groupby(["seg", "scope"]):
        w = (0.5 * m / m_all if seg == "<all>" else 0.5 * m / (m - m_all)) if split else 1.0
        simes = multipletests(blk["p_value"].to_numpy(float), method="fdr_bh")[1].min()
        gate = min(gate, simes * m / (len(blk) * w))
    weights = np.where(t["seg"] == "<all>", 0.5 * m / max(m_all, 1), 0.5 * m / max(m - m_all, 1)) if split else 1.0
    bh = multipletests(t["p_value"].to_numpy(float) / weights, method="fdr_bh")[1]
    return np.maximum(bh, min(gate, 1.0))


@pytest.mark.parametrize("segmented", [False, True])
def test_family_gate_is_block_simes(segmented):
    """Random calls (whole model x batch / window, optionally three segments): every adjusted p
    equals the weighted BH p floored by the block Simes gate computed with statsmodels."""
    rng = np.random.default_rng(21 + segmented)
    metrics = ["accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc"]
    s = DetectionSettings(thresholds=dict.fromkeys(metrics, 0.05), gating="significance")
    for _ in range(40):
        rows = []
        for seg in [None, "a", "b", "c"][: 4 if segmented else 1]:
            for scope in ("batch", "window"):
                for name in metrics if scope == "batch" else ["accuracy"]:
                    rows.append({"family": 0, "segment": seg, "scope": scope, "metric": name,
                                 "value": 0.8 - rng.uniform(0, 0.06), "se": 0.02, "n": 1000,
                                 "baseline": 0.8, "baseline_se": 0.005})
        out = decide(pd.DataFrame(rows), s)
        tested = np.isfinite(out["p_value"].astype(float))
        np.testing.assert_allclose(out.loc[tested, "adjusted_p_value"].to_numpy(float),
                                   _block_simes_reference(out), rtol=1e-12)


def test_metrics_that_fall_together_do_not_pay_for_each_other():
    """Five metrics of one batch at p ~ 0.035 and a quiet window row: the block Simes gate is
    6/5 x 0.035 = 0.042 < 0.05, so the call alerts (the weighted Bonferroni gate it replaced
    gave 6 x 0.035 = 0.21); a single metric at that p among six rows does not."""
    metrics = ["accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc"]
    s = DetectionSettings(thresholds=dict.fromkeys(metrics, 0.05), gating="significance")
    z = 1.812  # one-sided p = 0.035
    rows = [{"family": 0, "metric": name, "value": 0.8 - z * 0.05, "se": 0.05, "n": 1000,
             "baseline": 0.8, "baseline_se": 0.0} for name in metrics]
    rows.append({"family": 0, "metric": "accuracy", "scope": "window", "value": 0.8, "se": 0.01,
                 "n": 2000, "baseline": 0.8, "baseline_se": 0.0})
    out = decide(pd.DataFrame(rows), s)
    assert out["p_value"].iloc[0] == pytest.approx(0.035, abs=1e-4)
    assert out["adjusted_p_value"].iloc[:5].to_numpy(float) == pytest.approx(6 / 5 * out["p_value"].iloc[0])
    assert out["degraded"].iloc[:5].all()
    lone = pd.DataFrame(rows[:1] + [{**r, "value": 0.8} for r in rows[1:]])
    assert not decide(lone, s)["degraded"].any()


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.95])
def test_family_gate_keeps_the_calls_level_under_positive_dependence(rho):
    """Seeded check of the gate's validity: 20,000 calls under the global null, two blocks
    (five batch metrics, one window row) with equicorrelated one-sided z statistics (correlation
    ``rho`` inside a block, ``rho / 2`` across): the share of calls with an adjusted p below
    0.05 stays at most 0.05 (binomial allowance 0.004), and with strongly correlated metrics the
    gate rejects far more often than the Bonferroni gate (which gives 0.05 / 6 per metric)."""
    from perfkit.analysis._decide import _family_adjust

    rng = np.random.default_rng(int(rho * 100) + 1)
    calls, k = 20_000, 6
    cov = np.full((k, k), rho / 2)
    cov[:5, :5] = rho
    np.fill_diagonal(cov, 1.0)
    z = rng.multivariate_normal(np.zeros(k), cov, size=calls)
    p = 0.5 * special.erfc(z.ravel() / np.sqrt(2))
    fam = np.repeat(np.arange(calls), k)
    blocks = fam * 2 + np.tile([0, 0, 0, 0, 0, 1], calls)
    adj = _family_adjust(p, fam, np.ones(p.size, bool), np.ones(p.size, bool), "fdr_bh", blocks)
    rate = (adj.reshape(calls, k).min(axis=1) < 0.05).mean()
    bonferroni = (p.reshape(calls, k).min(axis=1) * k < 0.05).mean()
    assert rate <= 0.05 + 0.004, rate
    assert rate >= bonferroni - 1e-12
    if rho >= 0.95:
        assert rate >= 1.4 * bonferroni, (rate, bonferroni)  # measured 0.032 vs 0.021


def test_threshold_line_follows_direction_and_mode():
    s = DetectionSettings(thresholds={"accuracy": 0.1, "mse": 0.2})
    assert threshold_value("accuracy", 0.8, s) == pytest.approx(0.72)
    assert threshold_value("mse", 2.0, s) == pytest.approx(2.4)
    a = s.replace(threshold_mode="absolute")
    assert threshold_value("accuracy", 0.8, a) == pytest.approx(0.7)
    assert threshold_value("sample_count", 10, s) is None


# ---------------------------------------------------------------- the metric table
def test_every_metric_declares_what_the_code_asks():
    for name, spec in METRICS.items():
        assert spec.test in TEST_KINDS and spec.window in WINDOW_KINDS, name
        assert spec.lower <= spec.upper
        if spec.higher_is_better is None:
            assert spec.test == "none"
        for alias in spec.aliases:
            assert get_metric(alias) is spec
        for key in spec.threshold_keys:
            assert threshold_metric(key) == name
    assert {m for m, s in METRICS.items() if s.score_weight > 0} >= {"accuracy", "f1_macro", "roc_auc", "r2"}


# ---------------------------------------------------------------- invariances
_row = st.fixed_dictionaries({
    "metric": st.sampled_from(["accuracy", "f1_macro", "log_loss", "mse"]),
    "value": st.floats(0.05, 0.95),
    "se": st.floats(1e-4, 0.2),
    "baseline": st.floats(0.05, 0.95),
    "baseline_se": st.floats(0.0, 0.1),
})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_row, min_size=1, max_size=6), min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_families_are_independent_and_order_free(families, rnd):
    s = DetectionSettings(thresholds={"accuracy": 0.05, "f1_macro": 0.05, "log_loss": 0.1, "mse": 0.1},
                          gating="significance", window_batches=1)
    rows = pd.DataFrame([{**r, "family": f} for f, fam in enumerate(families) for r in fam])
    whole = decide(rows, s)
    # each family decided alone gives the same answer
    for f in range(len(families)):
        alone = decide(rows[rows["family"] == f], s)
        part = whole[whole["family"] == f]
        assert alone["degraded"].tolist() == part["degraded"].tolist()
        np.testing.assert_allclose(alone["adjusted_p_value"].to_numpy(float),
                                   part["adjusted_p_value"].to_numpy(float), equal_nan=True)
    # shuffling the rows changes nothing but the order
    perm = list(range(len(rows)))
    rnd.shuffle(perm)
    shuffled = decide(rows.iloc[perm], s)
    assert shuffled["degraded"].tolist() == whole["degraded"].iloc[perm].tolist()
    assert shuffled["retraining"].sum() == whole["retraining"].sum()
    # at most one retraining trigger per family, only on a degraded row
    per = whole.groupby("family")["retraining"].sum()
    assert (per <= 1).all() and not (whole["retraining"] & ~whole["degraded"]).any()


def test_window_row_alerts_only_when_the_batch_looks_worse_and_did_not_alert():
    s = DetectionSettings(thresholds={"mse": 0.10})
    base = {"family": 0, "metric": "mse", "baseline": 1.0, "baseline_se": 0.01}
    rows = pd.DataFrame([
        {**base, "scope": "batch", "value": 1.15, "se": 0.08},    # practical, not credible alone
        {**base, "scope": "window", "value": 1.16, "se": 0.01},   # credible once pooled
    ])
    out = decide(rows, s)
    assert out["degraded"].tolist() == [False, True]
    healthy = rows.assign(value=[1.0, 1.16])                   # the batch itself looks fine
    assert not decide(healthy, s)["degraded"].any()


def test_floor_is_its_own_question():
    s = DetectionSettings(thresholds={"accuracy": 0.05}, low_performance_threshold=0.5)
    rows = pd.DataFrame([
        {"family": 0, "metric": "performance_score", "scope": "floor", "value": 0.40, "se": 0.01},
        {"family": 1, "metric": "performance_score", "scope": "floor", "value": 0.49, "se": 0.05},
    ])
    out = decide(rows, s)
    assert out["degraded"].tolist() == [True, False]           # credibly below / not credibly
    assert out["severity"].tolist()[0] == "critical" and not out["retraining"].any()


# ---------------------------------------------------------------- tracker == replay == explorer
def _batch(rng, n, acc, k=3):
    y = rng.integers(0, k, n)
    correct = rng.random(n) < acc
    yp = np.where(correct, y, (y + rng.integers(1, k, n)) % k)
    p = np.full((n, k), 0.1)
    p[np.arange(n), yp] = 0.8
    p /= p.sum(axis=1, keepdims=True)
    return y, yp, p


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    """Three segments tracked by separate calls: one degrades, one is stable, one is poor all along."""
    path = tmp_path_factory.mktemp("decide") / "d.db"
    section = {
        "degradation_thresholds": {"accuracy_drop": 0.04, "f1_drop": 0.04, "log_loss_increase": 0.10},
        "metrics_to_track": ["accuracy", "f1_macro", "roc_auc", "log_loss"],
        "alert_channels": ["log"], "alert_cooldown_hours": 6, "baseline_batches": 3,
        "detection_window_batches": 2,
    }
    t = ModelPerformanceTracker(config=parse_config(section), store=path, model="m")
    rng = np.random.default_rng(2026)
    for i in range(24):
        ts = T0 + timedelta(hours=2 * i)
        t.track_performance(*_batch(rng, 600, 0.85), timestamp=ts, segment="eu", batch_id=f"eu{i}")
        t.track_performance(*_batch(rng, 600, 0.85 if i < 12 else 0.78), timestamp=ts + timedelta(minutes=1),
                            segment="us", batch_id=f"us{i}")
        t.track_performance(*_batch(rng, 600, 0.30), timestamp=ts + timedelta(minutes=2), segment="poor",
                            batch_id=f"poor{i}")
    return t


def _key(frame, status_col="status"):
    return sorted(zip(frame["batch_id"], frame["metric"].fillna("-"), frame["alert_type"],
                      frame["severity"], frame[status_col].replace({"fires": "delivered"}), strict=True))


def test_tracker_equals_replay_and_explorer_with_segments_window_and_floor(segmented):
    from perfkit.metrics import evaluate, state_from_dict
    from perfkit.widgets import ThresholdExplorer

    t = segmented
    stored = t.store.alerts("m")
    types = set(stored["alert_type"])
    assert {"performance_degradation", "low_performance"} <= types
    assert set(stored.loc[stored["alert_type"] == "performance_degradation", "segment"]) == {"us"}
    assert set(stored.loc[stored["alert_type"] == "low_performance", "segment"]) == {"poor"}
    # one low-performance alert per cooldown, not one per batch
    poor = stored[(stored["alert_type"] == "low_performance") & (stored["status"] != "suppressed")]
    assert 1 <= len(poor) <= 24 * 2 // 6 + 1

    ex = ThresholdExplorer(t, render_chart=False)
    assert _key(ex.alerts) == _key(stored)

    replayed = []
    for seg in ("eu", "us", "poor"):
        recs = t.store.records("m", segment=seg)
        base = evaluate(state_from_dict(t.store.get_baseline("m", segment=seg).state))
        # baseline batches are window partners only: mark them unchecked, as the explorer does
        from perfkit.analysis import history_frame

        frame = history_frame(recs)
        frame["_checked"] = np.arange(len(frame)) >= 3
        replayed.append(replay(frame, base, t.config.detection, cooldown_hours=6,
                               metrics=["accuracy", "f1_macro", "log_loss"]))
    assert _key(pd.concat(replayed)) == _key(stored)


def test_stable_poor_model_is_not_degraded(segmented):
    stored = segmented.store.alerts("m", segment="poor")
    assert set(stored["alert_type"]) == {"low_performance"}
    rng = np.random.default_rng(7)
    r = segmented.track_performance(*_batch(rng, 600, 0.30), timestamp=T0 + timedelta(days=5), segment="poor",
                                    batch_id="poor-late")
    analysis = r["degradation_analysis"]
    assert analysis["low_performance"] and not analysis["degradation_detected"]
    assert [a.alert_type for a in r.alerts] == ["low_performance"]


def test_new_metrics_carry_thresholds_end_to_end(tmp_path):
    """balanced_accuracy and brier_score were added through the metric table alone: they are
    tracked, stored, merged and can alert like the built-ins."""
    from perfkit.config import parse_config

    section = {"degradation_thresholds": {"brier_score_increase": 0.10, "balanced_accuracy_drop": 0.05},
               "metrics_to_track": ["balanced_accuracy", "brier_score"], "alert_channels": ["log"]}
    t = ModelPerformanceTracker(config=parse_config(section), store=tmp_path / "n.db", model="m")
    rng = np.random.default_rng(4)
    t.set_baseline(*_batch(rng, 20_000, 0.85))
    ok = t.track_performance(*_batch(rng, 3000, 0.85), timestamp=T0)
    assert {"balanced_accuracy", "brier_score"} <= set(ok.metrics) and not ok.alerts
    bad = t.track_performance(*_batch(rng, 3000, 0.60), timestamp=T0 + timedelta(hours=1))
    assert {a.metric for a in bad.alerts if a.alert_type == "performance_degradation"} == \
        {"balanced_accuracy", "brier_score"}
    assert t.window_metrics(days=3650)["brier_score"].value > 0
