"""Engine states (DuckDB over Parquet / pandas, PySpark) equal the in-memory states."""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from perfkit.engines import compute_states, states_from_parquet
from perfkit.engines._sql import DUCKDB, SPARK, auc_pair_cell_expr, bin_expr, cell_expr
from perfkit.exceptions import (
    EngineError,
    LabelError,
    NonFiniteError,
    ProbabilityError,
    ValidationError,
)
from perfkit.metrics import (
    ClassificationState,
    Moments,
    RegressionState,
    compute_state,
    evaluate,
    merge_states,
    state_from_dict,
)
from perfkit.metrics._kernels import bin_cells, delong_from_histograms, score_bins
from perfkit.metrics.layout import auc_pair_bucket_cells

RTOL = 1e-9
N_BATCHES = 40
SEGMENTS = ("a", "b", "c")


# ------------------------------------------------------------------------------ data
def _frame(task: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(20, 120, size=N_BATCHES * len(SEGMENTS))
    batch = np.repeat(np.arange(N_BATCHES * len(SEGMENTS)) // len(SEGMENTS), sizes)
    seg = np.repeat(np.tile(np.array(SEGMENTS, dtype=object), N_BATCHES), sizes)
    n = int(sizes.sum())
    ts = pd.Timestamp("2024-03-01") + pd.to_timedelta(rng.integers(0, 21 * 24 * 3600, n), unit="s")
    df = pd.DataFrame({"batch_id": batch, "segment": seg, "timestamp": ts})
    if task == "binary":
        y = rng.integers(0, 2, n)
        p = np.clip(rng.beta(2, 2, n) * 0.6 + 0.4 * y - 0.1, 0.0, 1.0)
        edge = np.array([0.0, 1.0, 0.5, 2.0**-45, 1 - 2.0**-53, 0.25, 0.75, 2.0**-40])
        p[: edge.size] = edge
        df["y_true"], df["y_pred"], df["p"] = y, (p >= 0.5).astype(np.int64), p
    elif task == "multiclass":
        names = np.array(["emu", "cat", "dog"], dtype=object)
        y = rng.integers(0, 3, n)
        pr = rng.dirichlet([1.0, 1.0, 1.0], n)
        pr[np.arange(n), y] += 0.6
        pr /= pr.sum(axis=1, keepdims=True)
        df["y_true"] = names[y]
        df["y_pred"] = names[np.argmax(pr, axis=1)]
        for j, c in enumerate(names):
            df[f"p_{c}"] = pr[:, j]
    else:
        y = rng.normal(1000.0, 30.0, n)
        y[rng.random(n) < 0.05] = 0.0
        yhat = y + rng.standard_t(4, n) * 5.0
        both = rng.random(n) < 0.02
        y[both], yhat[both] = 0.0, 0.0  # sMAPE 0/0
        df["y_true"], df["y_pred"] = y, yhat
    return df


MC_PROBA = {"cat": "p_cat", "dog": "p_dog", "emu": "p_emu"}
CASES = {
    "binary": dict(task="binary", proba="p"),
    "multiclass": dict(task="multiclass", proba=MC_PROBA),
    "regression": dict(task="regression"),
}


def _reference(df: pd.DataFrame, case: str, keys=("batch_id", "segment")) -> dict:
    out = {}
    for key, g in df.groupby(list(keys), sort=True):
        if case == "binary":
            s = compute_state(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), g["p"].to_numpy(),
                              task="binary", classes=[0, 1])
        elif case == "multiclass":
            pr = pd.DataFrame({c: g[col].to_numpy() for c, col in MC_PROBA.items()})
            s = compute_state(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), pr, task="multiclass",
                              classes=["cat", "dog", "emu"])
        else:
            s = compute_state(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), task="regression")
        out[key] = s
    return out


# ------------------------------------------------------------------------ comparison
def _close(a: float, b: float, scale: float = 0.0) -> bool:
    return abs(a - b) <= RTOL * max(abs(a), abs(b), scale) or (a == b)


def assert_moments(got: Moments, ref: Moments, what: str) -> None:
    assert got.n == ref.n, what
    if ref.n == 0:
        return
    sd = math.sqrt(max(ref.m2, 0.0) / ref.n)
    # central sums that cancel (M3 of symmetric data, M2 of constants) are compared on the
    # scale of the data: n * sd**k (and |mean| for the mean)
    assert _close(got.mean, ref.mean, sd), (what, "mean", got, ref)
    for k, attr in ((2, "m2"), (3, "m3"), (4, "m4")):
        scale = ref.n * sd**k
        assert _close(getattr(got, attr), getattr(ref, attr), scale), (what, attr, got, ref)


def assert_same_state(got, ref) -> None:
    assert type(got) is type(ref)
    assert got.n == ref.n and got.labelled == ref.labelled
    if isinstance(ref, RegressionState):
        for name in ("yhat", "y", "e", "ae", "se", "ape", "sape"):
            assert_moments(getattr(got, name), getattr(ref, name), name)
        assert got.n_zero_target == ref.n_zero_target
        assert _close(got.shift, ref.shift, math.sqrt(ref.y.m2 / ref.n))
        d = np.sqrt(ref.se.m2 / ref.n + ref.se.mean**2) * math.sqrt(ref.y.m2 / ref.n) * ref.n
        assert _close(got.cross1, ref.cross1, d), (got.cross1, ref.cross1)
        assert _close(got.cross2, ref.cross2, d * math.sqrt(ref.y.m2 / ref.n)), (got.cross2, ref.cross2)
        if ref.labelled:  # the |e| histogram: the same buckets exactly
            np.testing.assert_array_equal(got.ae_hist.ids, ref.ae_hist.ids)
            np.testing.assert_array_equal(got.ae_hist.counts, ref.ae_hist.counts)
        return
    assert isinstance(got, ClassificationState)
    assert (got.task, got.classes, got.positive_index, got.eps) == (
        ref.task, ref.classes, ref.positive_index, ref.eps,
    )
    np.testing.assert_array_equal(got.confusion, ref.confusion)
    np.testing.assert_array_equal(got.pred_counts, ref.pred_counts)
    assert np.array_equal(got.hist_pos, ref.hist_pos)
    assert np.array_equal(got.hist_neg, ref.hist_neg)
    assert (got.hist_pred is None) == (ref.hist_pred is None)
    assert ref.hist_pred is None or np.array_equal(got.hist_pred, ref.hist_pred)
    assert (got.pred_joint is None) == (ref.pred_joint is None)
    assert ref.pred_joint is None or np.array_equal(got.pred_joint, ref.pred_joint)
    # the macro AUC covariance counts, exactly (labelled multiclass)
    assert (got.auc_pair_counts is None) == (ref.auc_pair_counts is None)
    assert ref.auc_pair_counts is None or np.array_equal(got.auc_pair_counts, ref.auc_pair_counts)
    assert len(got.score_moments) == len(ref.score_moments)
    for j, (a, b) in enumerate(zip(got.score_moments, ref.score_moments, strict=True)):
        assert_moments(a, b, f"score {j}")
    assert_moments(got.logloss, ref.logloss, "logloss")
    assert got.auc_exact is None and got.auc_var_exact is None
    for j in range(len(got.hist_classes)):
        a, _, bound = delong_from_histograms(got.hist_pos[j], got.hist_neg[j])
        if math.isnan(ref.auc_exact[j]):
            assert math.isnan(a)
        else:
            assert abs(a - ref.auc_exact[j]) <= bound + 1e-12


def assert_same_metrics(got, ref) -> None:
    rg, rr = evaluate(got), evaluate(ref)
    assert list(rg) == list(rr)
    for name in rr:
        a, b = rg[name].value, rr[name].value
        if name == "roc_auc":
            assert abs(a - b) <= rg[name].error_bound + 1e-12, (a, b, rg[name].error_bound)
        elif math.isnan(b):
            assert math.isnan(a), name
        else:
            assert math.isclose(a, b, rel_tol=1e-8, abs_tol=1e-12), (name, a, b)


def check_frame(out: pd.DataFrame, df: pd.DataFrame, case: str) -> None:
    ref = _reference(df, case)
    assert list(out.columns[:2]) == ["batch_id", "segment"]
    assert len(out) == len(ref) == N_BATCHES * len(SEGMENTS)
    for row in out.itertuples(index=False):
        assert_same_state(row.state, ref[(row.batch_id, row.segment)])
    # the metric values of a few groups and of the merged whole
    for row in list(out.itertuples(index=False))[:3]:
        assert_same_metrics(row.state, ref[(row.batch_id, row.segment)])
    whole = merge_states(out["state"])
    assert_same_metrics(whole, merge_states(ref.values()))
    if case != "regression":
        ref_whole = merge_states(ref.values())
        np.testing.assert_array_equal(whole.hist_pos, ref_whole.hist_pos)
        # the merged window's AUC interval comes from the same merged counts (no ratio fallback)
        ga, ra = evaluate(whole)["roc_auc"], evaluate(ref_whole)["roc_auc"]
        if math.isfinite(ra.value):
            assert math.isclose(ga.se, ra.se, rel_tol=1e-6), (ga, ra)


# ------------------------------------------------------------------------ DuckDB
def _edge_scores() -> np.ndarray:
    rng = np.random.default_rng(7)
    pw = 2.0 ** np.arange(-60, 1)
    vals = [0.0, 1.0, 0.5, 1 - 2.0**-53, 2.0**-53, 5e-324, 1e-300, 2.0**-40, 2.0**-41]
    vals += list(pw) + list(np.nextafter(pw, 0)) + list(np.nextafter(pw, 2))
    vals += list(1 - pw[pw <= 0.5]) + list(np.nextafter(1 - pw[pw <= 0.5], 0))
    vals += list(rng.random(3000)) + list(10.0 ** rng.uniform(-14, 0, 2000))
    vals += list(1 - 10.0 ** rng.uniform(-16, 0, 2000))
    x = np.asarray(vals, dtype=np.float64)
    return x[(x >= 0) & (x <= 1)]


def test_sql_bucket_equals_kernel_bins_on_edge_values():
    duckdb = pytest.importorskip("duckdb")
    x = _edge_scores()
    rel = duckdb.from_df(pd.DataFrame({"p": x, "i": np.arange(x.size)}))
    got = rel.query("t", f"SELECT i, {bin_expr('p')} AS b FROM t ORDER BY i").df()["b"].to_numpy()
    np.testing.assert_array_equal(got, score_bins(x))
    cells = rel.query("t", f"SELECT i, {cell_expr('p')} AS c FROM t ORDER BY i").df()["c"].to_numpy()
    np.testing.assert_array_equal(cells, bin_cells()[score_bins(x)])  # cells nest the buckets
    sql = f"SELECT i, {auc_pair_cell_expr(bin_expr('p'))} AS c FROM t ORDER BY i"
    auc_cells = rel.query("t", sql).df()["c"].to_numpy()
    np.testing.assert_array_equal(auc_cells, auc_pair_bucket_cells()[score_bins(x)])
    label = "it's\\yes"
    assert duckdb.sql(f"SELECT {DUCKDB.literal(label)}").fetchall()[0][0] == label


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("engines")
    frames = {case: _frame(case, seed=i) for i, case in enumerate(CASES)}
    for case, df in frames.items():
        (d / case).mkdir()
        half = len(df) // 2  # two files: the glob is read as one dataset
        df.iloc[:half].to_parquet(d / case / "part-0.parquet", row_group_size=1000)
        df.iloc[half:].to_parquet(d / case / "part-1.parquet", row_group_size=1000)
    return d, frames


@pytest.mark.parametrize("case", list(CASES))
def test_duckdb_parquet_states_equal_in_memory(parquet_dir, case):
    d, frames = parquet_dir
    out = states_from_parquet(str(d / case / "*.parquet"), group_by=("batch_id", "segment"), **CASES[case])
    check_frame(out, frames[case], case)


def test_duckdb_dataframe_and_dicts_round_trip(parquet_dir):
    _, frames = parquet_dir
    out = compute_states(frames["binary"], task="binary", proba="p", group_by=["batch_id", "segment"],
                         with_dicts=True)
    for s, dct in zip(out["state"], out["state_dict"], strict=True):
        assert state_from_dict(dct).equals(s)


def test_duckdb_time_buckets_match_pandas_engine(parquet_dir):
    _, frames = parquet_dir
    df = frames["multiclass"]
    for bucket in ("1d", "1w"):
        kw = dict(task="multiclass", proba=MC_PROBA, group_by=("segment",), time_bucket=bucket)
        got = compute_states(df, **kw)
        ref = compute_states(df, engine="pandas", **kw)
        assert got[["segment", "time_bucket"]].equals(ref[["segment", "time_bucket"]])
        if bucket == "1w":
            assert (got["time_bucket"].dt.day_of_week == 0).all()
        for a, b in zip(got["state"], ref["state"], strict=True):
            assert_same_state(a, b)


def test_duckdb_argmax_unlabelled_and_one_group():
    df = _frame("multiclass", seed=3)
    # y_pred omitted: the arg-max of the scores, as compute_state does
    out = compute_states(df, task="multiclass", y_pred=None, proba=MC_PROBA, group_by=())
    pr = pd.DataFrame({c: df[col] for c, col in MC_PROBA.items()})
    ref = compute_state(df["y_true"].to_numpy(), None, pr, task="multiclass")
    assert len(out) == 1 and list(out.columns) == ["state"]
    assert_same_state(out["state"][0], ref)
    # labels not arrived: prediction-only states
    out = compute_states(df, task="multiclass", y_true=None, proba=MC_PROBA, group_by="segment")
    s = out["state"][0]
    assert not s.labelled and s.confusion is None and s.hist_pos.sum() == 0
    g = df[df["segment"] == "a"]
    ref = compute_state(None, g["y_pred"].to_numpy(), pr.loc[g.index], task="multiclass")
    np.testing.assert_array_equal(s.hist_neg, ref.hist_neg)
    np.testing.assert_array_equal(s.hist_pred, ref.hist_pred)
    np.testing.assert_array_equal(s.pred_joint, ref.pred_joint)
    np.testing.assert_array_equal(s.pred_counts, ref.pred_counts)


def test_duckdb_float32_scores_and_positive_label():
    df = _frame("binary", seed=5).astype({"p": np.float32})
    df["p"] = 1 - df["p"]  # now P(class 0)
    out = compute_states(df, task="binary", proba="p", positive_label=0, group_by=())
    ref = compute_state(df["y_true"].to_numpy(), df["y_pred"].to_numpy(), df["p"].to_numpy(),
                        positive_label=0)
    assert out["state"][0].eps == ref.eps == float(np.finfo(np.float32).eps)
    assert_same_state(out["state"][0], ref)


def test_duckdb_errors_name_the_parameter():
    df = _frame("binary")
    with pytest.raises(ValidationError) as e:
        compute_states(df, task="binary", proba="nope")
    assert e.value.parameter == "proba"
    bad = df.copy()
    bad.loc[3, "p"] = 1.5
    with pytest.raises(ProbabilityError):
        compute_states(bad, task="binary", proba="p")
    bad.loc[3, "p"] = np.nan
    with pytest.raises(NonFiniteError) as e:
        compute_states(bad, task="binary", proba="p")
    assert e.value.parameter == "proba"
    with pytest.raises(LabelError) as e:
        compute_states(df, task="binary", proba="p", classes=[0, 2])
    assert e.value.parameter == "y_true"
    with pytest.raises(ValidationError) as e:
        compute_states(df, task="binary", time_bucket="1y")
    assert e.value.parameter == "time_bucket"
    with pytest.raises(ValidationError) as e:
        compute_states(df, task="binary", engine="polars")
    assert e.value.parameter == "engine"
    with pytest.raises(EngineError):
        states_from_parquet("/nonexistent/*.parquet", task="binary")


# ---------------------------------------------------------------------------- Spark
def _spark_available() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install perfkit[spark])"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "java is not installed (PySpark needs a JVM)"
    return None


@pytest.fixture(scope="session")
def spark():
    reason = _spark_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Spark cannot run: {reason}")
        pytest.skip(reason)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("perfkit-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.mark.spark
@pytest.mark.slow
def test_spark_sql_bucket_equals_kernel_bins(spark):
    x = _edge_scores()
    df = spark.createDataFrame(pd.DataFrame({"i": np.arange(x.size), "p": x}))
    df.createOrReplaceTempView("edge_scores")
    got = spark.sql(f"SELECT i, {bin_expr('p')} AS b FROM edge_scores ORDER BY i").toPandas()
    np.testing.assert_array_equal(got["b"].to_numpy(), score_bins(x))
    cells = spark.sql(f"SELECT i, {cell_expr('p')} AS c FROM edge_scores ORDER BY i").toPandas()
    np.testing.assert_array_equal(cells["c"].to_numpy(), bin_cells()[score_bins(x)])
    # label literals survive Spark's quoting and backslash escapes
    label = "it's\\yes"
    assert spark.sql(f"SELECT {SPARK.literal(label)} AS s").collect()[0]["s"] == label


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_spark_states_equal_in_memory(spark, parquet_dir, case):
    d, frames = parquet_dir
    sdf = spark.read.parquet(str(d / case))
    out = compute_states(sdf, engine="spark", group_by=("batch_id", "segment"), **CASES[case])
    check_frame(out, frames[case], case)


@pytest.mark.spark
@pytest.mark.slow
def test_spark_time_bucket_matches_pandas_engine(spark):
    df = _frame("regression", seed=11)
    kw = dict(task="regression", group_by=("segment",), time_bucket="1w")
    got = compute_states(spark.createDataFrame(df), engine="spark", **kw)
    ref = compute_states(df, engine="pandas", **kw)
    assert got[["segment", "time_bucket"]].equals(ref[["segment", "time_bucket"]])
    for a, b in zip(got["state"], ref["state"], strict=True):
        assert_same_state(a, b)


@pytest.mark.spark
@pytest.mark.slow
def test_spark_unlabelled_states_give_the_in_memory_estimate(spark):
    """Label-free estimates from Spark's prediction states (baseline state from Spark too)
    equal those of the in-memory states, also for a window merged from two batches."""
    from scipy.special import softmax

    from perfkit.metrics import compute_state, estimate, merge_states

    rng = np.random.default_rng(21)
    classes, cols = [0, 1, 2], {c: f"p{c}" for c in range(3)}

    def draw(n, shift):
        pi = softmax(rng.normal(0, 1.2, (n, 3)) + shift * np.arange(3) / 3, axis=1)
        y = (rng.random(n)[:, None] > np.cumsum(pi, axis=1)).sum(1)
        pred = np.where(pi[:, 2] > 0.3, 2, pi.argmax(1))  # a business rule, not the arg-max
        return y, pred, pi

    by, bpred, bp = draw(4000, 0.0)
    _, pred, p = draw(3000, 0.8)
    base_df = pd.DataFrame({"y_true": by, "y_pred": bpred, **{f"p{c}": bp[:, c] for c in range(3)}})
    df = pd.DataFrame({"batch_id": np.arange(3000) % 2, "y_pred": pred, **{f"p{c}": p[:, c] for c in range(3)}})
    base_s = compute_states(spark.createDataFrame(base_df), engine="spark", task="multiclass", proba=cols,
                            group_by=())["state"][0]
    out = compute_states(spark.createDataFrame(df), engine="spark", task="multiclass", y_true=None, proba=cols,
                         classes=classes)
    base_m = compute_state(by, bpred, bp, classes=classes)
    states = {}
    for g, s in zip(out["batch_id"], out["state"], strict=True):
        sel = df["batch_id"].to_numpy() == g
        states[g] = (s, compute_state(None, pred[sel], p[sel], classes=classes))
    states["window"] = (merge_states([s for s, _ in states.values()]), compute_state(None, pred, p, classes=classes))
    for key, (s, mem) in states.items():
        got, ref = estimate(s, base_s), estimate(mem, base_m)
        assert ref["accuracy"].method == "cbpe" and np.isfinite(ref["roc_auc"].value)
        for m in ref:
            assert got[m].value == pytest.approx(ref[m].value, abs=1e-9), (key, m)
            assert got[m].se == pytest.approx(ref[m].se, rel=1e-9, abs=1e-12), (key, m)
