"""Coverage of perfkit's 95 % intervals on hard data, beside the row-level percentile bootstrap.

Scenarios (known population truth; see ``SCENARIOS``):

* ``balanced``   binary, 50 % positives, binormal scores (AUC 0.86)
* ``rare``       binary, 1 % positives (fraud-like), AUC 0.98, threshold above 0.5
* ``auc99``      binary, 30 % positives, AUC 0.99
* ``5class``     multiclass, priors 0.35 / 0.25 / 0.2 / 0.12 / 0.08
* ``normal``     regression, normal errors (bias -0.1)
* ``t3``         regression, Student t(3) errors (squared errors have tail index 1.5)
* ``near_zero``  regression, targets uniform on [0.02, 1] (MAPE heavily skewed)

each at n in {50, 200, 1,000, 10,000}, as one batch and as a merge of 10 batches of n / 10
rows. A cell is covered when the population value lies in ``[ci_lower, ci_upper]``; cells
whose value is undefined in a replication (no positives, say) are left out of that metric's
count and the share left out is printed (column ``undef``).

MAPE is only scored on ``near_zero``: with targets of positive density at 0 (``normal``,
``t3``) the population MAPE is infinite.

Truth: closed forms where they exist (regression MSE / MAE / R2 / MAPE / quantiles of |e|),
else the metric on 2,000,000 rows (``rows_for_truth``), whose own error is a few percent of
the smallest interval's half width.

Baseline ``pct``: the row-level percentile bootstrap (B = 200 row resamples per batch; for
confusion-matrix metrics the equivalent multinomial draw of the cells).

Run: ``python benchmarks/coverage.py`` (``--quick`` for 100 replications and n <= 1,000,
``--reps``, ``--only SCENARIO``, ``--ns``). Confirming single cells with many replications:
``--cells balanced:50 rare:1000 --metrics accuracy f1 --reps 2000 --no-baseline --no-merged``.
Seeded: the same command prints the same table.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import expit, softmax

from perfkit.metrics import compute_state, evaluate, merge_states

BINARY_METRICS = ("accuracy", "precision", "recall", "f1", "precision_macro", "recall_macro",
                  "f1_macro", "roc_auc", "log_loss")
MULTI_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "log_loss")
REG_METRICS = ("mse", "rmse", "mae", "r2", "mape", "smape", "median_absolute_error",
               "p90_absolute_error")
NS = (50, 200, 1000, 10_000)
PARTS = 10
B_PCT = 200


# ----------------------------------------------------------------------------- scenarios
@dataclass(frozen=True)
class Binary:
    """y ~ Bernoulli(pi); latent s = +-d/2 + N(0, 1); score expit(s - t); predict s > t."""

    pi: float
    d: float
    t: float
    task: str = "binary"
    metrics: tuple = BINARY_METRICS

    def draw(self, rng, n):
        y = (rng.random(n) < self.pi).astype(np.int64)
        s = rng.normal(size=n) + self.d * (y - 0.5)
        p = expit(s - self.t)
        return y, (s > self.t).astype(np.int64), p

    def min_expected(self, n, metric):
        if metric in ("precision", "recall", "f1"):
            return n * self.pi
        return n * min(self.pi, 1 - self.pi)


@dataclass(frozen=True)
class Multi:
    """y ~ prior; logits N(0, 1) + a * onehot(y); predict the arg-max."""

    prior: tuple
    a: float
    task: str = "multiclass"
    metrics: tuple = MULTI_METRICS

    def draw(self, rng, n):
        k = len(self.prior)
        y = rng.choice(k, size=n, p=np.asarray(self.prior))
        proba = softmax(rng.normal(size=(n, k)) + self.a * np.eye(k)[y], axis=1)
        return y, proba.argmax(1), proba

    def min_expected(self, n, metric):
        return n * min(self.prior)


@dataclass(frozen=True)
class Reg:
    """Regression: ``kind`` in {"normal", "t3", "near_zero"}."""

    kind: str
    task: str = "regression"

    @property
    def metrics(self) -> tuple:  # MAPE only where it is finite
        return REG_METRICS if self.kind == "near_zero" else tuple(m for m in REG_METRICS if m != "mape")

    def draw(self, rng, n):
        if self.kind == "normal":  # y = 3 + x + u, yhat = 3.1 + 0.8 x: e ~ N(-0.1, 1.04)
            x = rng.normal(size=n)
            return 3 + x + rng.normal(size=n), 3.1 + 0.8 * x
        if self.kind == "t3":  # y = 2 + x + t3, yhat = 2 + x
            x = rng.normal(size=n)
            return 2 + x + rng.standard_t(3, size=n), 2 + x
        y = rng.uniform(0.02, 1.0, size=n)  # near_zero: e ~ N(0, 0.1^2)
        return y, y - 0.1 * rng.normal(size=n)

    def min_expected(self, n, metric):
        return n


SCENARIOS = {
    "balanced": Binary(0.5, 1.5, 0.0),
    "rare": Binary(0.01, 3.0, 1.0),
    "auc99": Binary(0.3, math.sqrt(2) * 2.326, 0.0),
    "5class": Multi((0.35, 0.25, 0.2, 0.12, 0.08), 1.5),
    "normal": Reg("normal"),
    "t3": Reg("t3"),
    "near_zero": Reg("near_zero"),
}


# ----------------------------------------------------------------------------- truth
def _folded_normal_quantile(q, mu, sd):
    f = lambda x: stats.norm.cdf((x - mu) / sd) - stats.norm.cdf((-x - mu) / sd) - q  # noqa: E731
    from scipy.optimize import brentq

    return brentq(f, 0.0, abs(mu) + 10 * sd)


def _regression_truth(kind: str) -> dict[str, float]:
    if kind == "normal":
        mu, s2 = -0.1, 1.04
        sd = math.sqrt(s2)
        mse = mu * mu + s2
        mae = sd * math.sqrt(2 / math.pi) * math.exp(-mu * mu / (2 * s2)) + mu * (1 - 2 * stats.norm.cdf(-mu / sd))
        var_y = 2.0
        med, p90 = (_folded_normal_quantile(q, mu, sd) for q in (0.5, 0.9))
        out = {"mse": mse, "mae": mae, "r2": 1 - mse / var_y, "median_absolute_error": med,
               "p90_absolute_error": p90, "mape": math.nan}
    elif kind == "t3":
        mse = 3.0
        out = {"mse": mse, "mae": 2 * math.sqrt(3) / math.pi, "r2": 1 - mse / 4.0,
               "median_absolute_error": stats.t.ppf(0.75, 3), "p90_absolute_error": stats.t.ppf(0.95, 3),
               "mape": math.nan}
    else:
        sd = 0.1
        var_y = 0.98**2 / 12
        mae = sd * math.sqrt(2 / math.pi)
        out = {"mse": sd * sd, "mae": mae, "r2": 1 - sd * sd / var_y,
               "median_absolute_error": sd * stats.norm.ppf(0.75), "p90_absolute_error": sd * stats.norm.ppf(0.95),
               "mape": mae * math.log(1.0 / 0.02) / 0.98}
    out["rmse"] = math.sqrt(out["mse"])
    return out


_TRUTH: dict[str, dict[str, float]] = {}


def rows_for_truth() -> int:
    return 2_000_000


def truth(name: str) -> dict[str, float]:
    """Population values of every metric of a scenario (cached)."""
    if name in _TRUTH:
        return _TRUTH[name]
    sc = SCENARIOS[name]
    rng = np.random.default_rng(987654)
    big = sc.draw(rng, rows_for_truth())
    if sc.task == "regression":
        y, yhat = big
        e = np.abs(y - yhat)
        out = _regression_truth(sc.kind)
        out["smape"] = float(np.mean(2 * e / (np.abs(y) + np.abs(yhat))))
    else:
        y, pred, proba = big
        st = compute_state(y, pred, proba, classes=list(range(2 if sc.task == "binary" else len(sc.prior))))
        out = {k: v.value for k, v in evaluate(st, metrics=sc.metrics, n_boot=10).items()}
    _TRUTH[name] = out
    return out


# ----------------------------------------------------------------------------- baseline
def _weights(rng, n, b):
    idx = rng.integers(0, n, size=(b, n))
    return np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n).astype(float)


def _wauc(score, pos, w):
    """Weighted AUC per weight row (ties one half)."""
    order = np.argsort(score, kind="stable")
    s, p, w = score[order], pos[order], w[:, order]
    wn = w * (~p)
    wp = w * p
    below = np.cumsum(wn, axis=1) - wn
    # ties: negatives in the same tie group count one half
    uniq, start = np.unique(s, return_index=True)
    if len(uniq) < len(s):
        grp = np.searchsorted(uniq, s)
        gsum = np.zeros((w.shape[0], len(uniq)))
        np.add.at(gsum.T, grp, wn.T)
        gstart = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(gsum, axis=1)[:, :-1]], axis=1)
        below = gstart[:, grp] + 0.5 * gsum[:, grp]
    num = (wp * below).sum(1)
    den = wp.sum(1) * wn.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def _cm_metrics(cm, zero_division=0.0):
    """Binary/multiclass confusion metrics of (B, k, k) count arrays."""
    from perfkit.metrics.intervals import macro_prf

    k = cm.shape[-1]
    present = np.ones(k, dtype=bool)
    out = {"accuracy": np.trace(cm, axis1=1, axis2=2) / cm.sum((1, 2))}
    m = macro_prf(cm, present, zero_division)
    out["precision_macro"], out["recall_macro"], out["f1_macro"] = m[:, 0], m[:, 1], m[:, 2]
    if k == 2:
        tp = cm[:, 1, 1].astype(float)
        pp, tt = cm[:, :, 1].sum(1), cm[:, 1, :].sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["precision"] = np.where(pp > 0, tp / np.maximum(pp, 1), zero_division)
            out["recall"] = np.where(tt > 0, tp / np.maximum(tt, 1), zero_division)
            out["f1"] = np.where(pp + tt > 0, 2 * tp / np.maximum(pp + tt, 1), zero_division)
    return out


def percentile_bootstrap(sc, data, rng, b=B_PCT) -> dict[str, tuple[float, float]]:
    """Row-level percentile bootstrap intervals of every metric of the scenario."""
    draws: dict[str, np.ndarray] = {}
    if sc.task == "regression":
        y, yhat = data
        n = len(y)
        w = _weights(rng, n, b)
        e = y - yhat
        ae = np.abs(e)
        mse = w @ (e * e) / n
        draws["mse"], draws["rmse"], draws["mae"] = mse, np.sqrt(mse), w @ ae / n
        ybar = w @ y / n
        sst = w @ (y * y) / n - ybar * ybar
        draws["r2"] = 1 - mse / sst
        nz = y != 0
        draws["mape"] = (w[:, nz] @ (ae[nz] / np.abs(y[nz]))) / w[:, nz].sum(1)
        den = np.abs(y) + np.abs(yhat)
        draws["smape"] = w @ np.where(den > 0, 2 * ae / np.where(den > 0, den, 1), 0.0) / n
        order = np.argsort(ae)
        cw = np.cumsum(w[:, order], axis=1)
        for name, q in (("median_absolute_error", 0.5), ("p90_absolute_error", 0.9)):
            # np.quantile's linear interpolation on the resample
            pos = q * (n - 1)
            lo_i = np.array([np.searchsorted(c, math.floor(pos) + 1) for c in cw])
            hi_i = np.array([np.searchsorted(c, math.floor(pos) + 2) for c in cw])
            frac = pos - math.floor(pos)
            vals = ae[order]
            draws[name] = vals[np.minimum(lo_i, n - 1)] * (1 - frac) + vals[np.minimum(hi_i, n - 1)] * frac
    else:
        y, pred, proba = data
        n = len(y)
        k = 2 if sc.task == "binary" else len(sc.prior)
        cm = np.bincount(y * k + pred, minlength=k * k).astype(float)
        cmb = rng.multinomial(n, cm / n, size=b).reshape(b, k, k)
        draws.update(_cm_metrics(cmb))
        w = _weights(rng, n, b)
        p2 = proba if proba.ndim == 2 else np.column_stack([1 - proba, proba])
        eps = np.finfo(np.float64).eps
        loss = -np.log(np.clip(p2[np.arange(n), y], eps, 1 - eps))
        draws["log_loss"] = w @ loss / n
        if k == 2:
            draws["roc_auc"] = _wauc(p2[:, 1], y == 1, w)
        else:
            draws["roc_auc"] = np.nanmean(np.stack([_wauc(p2[:, c], y == c, w) for c in range(k)]), axis=0)
    out = {}
    for name, d in draws.items():
        d = d[np.isfinite(d)]
        out[name] = tuple(np.quantile(d, [0.025, 0.975])) if d.size > 10 else (math.nan, math.nan)
    return out


# ----------------------------------------------------------------------------- simulation
def _states(sc, data, merged: bool):
    classes = None if sc.task == "regression" else list(range(2 if sc.task == "binary" else len(sc.prior)))
    n = len(data[0])
    if not merged:
        return compute_state(*data, task=sc.task, classes=classes)
    parts = np.array_split(np.arange(n), PARTS)
    return merge_states([compute_state(*(a[i] for a in data), task=sc.task, classes=classes) for i in parts])


def run_cell(name: str, n: int, reps: int, seed: int = 0, *, baseline: bool = True,
             merged: bool = True, n_boot: int = 1000, metrics: tuple | None = None) -> dict:
    """Coverage and median width of perfkit (one batch, merged) and the percentile bootstrap.

    ``metrics`` restricts the cell to some of the scenario's metrics (the data drawn, hence
    the replications, are the same whatever the selection)."""
    sc = SCENARIOS[name]
    tr = truth(name)
    rng = np.random.default_rng([seed, n, sum(map(ord, name))])
    kinds = ["one"] + (["merged"] if merged else []) + (["pct"] if baseline else [])
    chosen = tuple(m for m in sc.metrics if metrics is None or m in metrics)
    hits = {kd: {m: [] for m in chosen} for kd in kinds}
    width = {kd: {m: [] for m in chosen} for kd in kinds}
    reasons: dict[str, dict[str, int]] = {m: {} for m in chosen}
    for r in range(reps):
        data = sc.draw(rng, n)
        for kd in kinds:
            if kd == "pct":
                ivs = percentile_bootstrap(sc, data, rng)
            else:
                rep = evaluate(_states(sc, data, kd == "merged"), metrics=chosen, n_boot=n_boot, seed=r)
                ivs = {}
                for m, v in rep.items():
                    ivs[m] = (v.ci_lower, v.ci_upper) if math.isfinite(v.value) else (math.nan, math.nan)
                    if kd == "one" and v.reason:
                        key = v.reason.split(":")[0]
                        reasons[m][key] = reasons[m].get(key, 0) + 1
            for m in chosen:
                lo, hi = ivs[m]
                t = tr[m]
                if math.isnan(lo) or math.isnan(hi) or not math.isfinite(t):
                    continue
                hits[kd][m].append(lo <= t <= hi)
                width[kd][m].append(min(hi - lo, 1e300))
    rows = []
    for m in chosen:
        row = {"scenario": name, "n": n, "metric": m, "min_expected": sc.min_expected(n, m),
               "reasons": reasons[m]}
        for kd in kinds:
            h = hits[kd][m]
            row[f"cov_{kd}"] = float(np.mean(h)) if h else math.nan
            # median width: a heavy-tailed interval may be unbounded in a few replications
            row[f"width_{kd}"] = float(np.median(width[kd][m])) if h else math.nan
            row[f"undef_{kd}"] = 1 - len(h) / reps
        rows.append(row)
    return {"rows": rows}


def goal(row) -> str:
    """The issue's goal for a cell: 93-97 % where the class is expected >= 10 times, else >= 90 %;
    heavy-tailed quantities (t3 MSE / RMSE / R2): >= 88 % at n >= 1,000."""
    if row["scenario"] == "t3" and row["metric"] in ("mse", "rmse", "r2"):
        return ">=88" if row["n"] >= 1000 else "-"
    return "93-97" if row["min_expected"] >= 10 else ">=90"


def _ok(row, key) -> str:
    c = row.get(key, math.nan)
    if not math.isfinite(c):
        return " "
    g = goal(row)
    if g == "-":
        return " "
    if g == "93-97":
        return " " if 0.93 <= c <= 0.97 else "*"
    return " " if c >= float(g[2:]) / 100 else "*"


def format_rows(rows: list[dict]) -> str:
    head = (f"{'scenario':<10} {'n':>6} {'metric':<22} {'goal':>6} | {'one':>6} {'merged':>7} {'pct':>6} |"
            f" {'w_one':>8} {'w_pct':>8} {'ratio':>6} | undef  reasons")
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = r.get("width_one", math.nan) / r.get("width_pct", math.nan) if r.get("width_pct") else math.nan
        rs = ",".join(f"{k}:{v}" for k, v in sorted(r["reasons"].items()))
        lines.append(
            f"{r['scenario']:<10} {r['n']:>6} {r['metric']:<22} {goal(r):>6} |"
            f" {r.get('cov_one', math.nan):6.3f}{_ok(r, 'cov_one')}"
            f"{r.get('cov_merged', math.nan):6.3f}{_ok(r, 'cov_merged')}"
            f" {r.get('cov_pct', math.nan):6.3f} |"
            f" {r.get('width_one', math.nan):8.4g} {r.get('width_pct', math.nan):8.4g} {ratio:6.2f} |"
            f" {r.get('undef_one', 0):.2f}  {rs}"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 replications, n <= 1,000")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--only", nargs="*", default=None, help="scenario names")
    ap.add_argument("--ns", nargs="*", type=int, default=None)
    ap.add_argument("--metrics", nargs="*", default=None, help="only these metrics")
    ap.add_argument("--cells", nargs="*", default=None, metavar="SCENARIO:N",
                    help="only these cells (e.g. balanced:50 rare:1000), all reps at every n")
    ap.add_argument("--no-baseline", action="store_true", help="skip the percentile bootstrap")
    ap.add_argument("--no-merged", action="store_true", help="skip the merge of 10 batches")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    reps = args.reps or (100 if args.quick else 500)
    ns = args.ns or ((50, 200, 1000) if args.quick else NS)
    names = args.only or list(SCENARIOS)
    if args.cells:
        cells = [(c.split(":")[0], int(c.split(":")[1])) for c in args.cells]
    else:
        cells = [(name, n) for name in names for n in ns]
    metrics = tuple(args.metrics) if args.metrics else None
    t0 = time.perf_counter()
    rows = []
    for name, n in cells:
        # fewer replications of the slow 10,000-row cells (unless cells are named)
        r = reps if n < 10_000 or args.cells else max(reps // 2, 50)
        rows += run_cell(name, n, r, args.seed, baseline=not args.no_baseline, merged=not args.no_merged,
                         metrics=metrics)["rows"]
        print(format_rows([x for x in rows if x["scenario"] == name and x["n"] == n]).split("\n", 2)[-1],
              flush=True)
    at_10k = reps if args.cells else max(reps // 2, 50)
    print(f"\n95 % intervals, {reps} replications a cell ({at_10k} at n = 10,000); "
          f"'*' marks a cell outside its goal; pct = row-level percentile bootstrap (B = {B_PCT}); "
          f"ratio = median width perfkit / pct.\n")
    print(format_rows(rows))
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
