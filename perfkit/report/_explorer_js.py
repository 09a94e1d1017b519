"""The offline explorer's decision script: :func:`perfkit.analysis.decide` + cooldown in JavaScript.

A line-by-line port of the batch / window rows of ``decide`` (degradation, practical, the
Miettinen-Nurminen score test with the Gart-Nam skewness correction for proportions or a z
test, one weighted, block-Simes-gated p-value adjustment per tracking call, the window rule, severity)
and of ``perfkit.alerts.apply_cooldown``, run on the numbers :func:`perfkit.report._explorer.explorer_payload` ships. ``erfc`` uses a series
below 3 and a continued fraction above (relative error ~1e-15), so p-values match scipy's to
rounding. The browser tests compare it with ``replay`` at several slider positions.

The script defines ``window.perfkitExplorer(view, payload)``; :mod:`perfkit.report.display`
calls it once the chart is embedded. It listens to the ``threshold`` (percent) and
``explorer_metric`` signals and sets ``fire_keys``, ``suppressed_keys`` and ``fire_count``.
"""

from __future__ import annotations

__all__ = ["EXPLORER_JS"]

EXPLORER_JS = r"""
(function () {
  if (window.perfkitExplorer) { return; }
  var SQRT_PI = Math.sqrt(Math.PI);
  function erfcPos(x) {
    if (x < 3) {
      var sum = 0, term = x, n = 0;
      while (n < 200) {
        var add = term / (2 * n + 1);
        sum += add;
        if (Math.abs(add) < 1e-17 * Math.abs(sum)) { break; }
        n += 1;
        term = -term * x * x / n;
      }
      return 1 - 2 / SQRT_PI * sum;
    }
    // Lentz continued fraction: erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))
    var tiny = 1e-300, f = x, C = x, D = 0, k = 1;
    for (; k < 500; k++) {
      var a = k / 2;
      D = x + a * D; if (D === 0) { D = tiny; }
      C = x + a / C; if (C === 0) { C = tiny; }
      D = 1 / D;
      var delta = C * D;
      f *= delta;
      if (Math.abs(delta - 1) < 1e-16) { break; }
    }
    return Math.exp(-x * x) / SQRT_PI / f;
  }
  function erfc(x) { return x >= 0 ? erfcPos(x) : 2 - erfcPos(-x); }
  function normSf(z) { return isFinite(z) ? 0.5 * erfc(z / Math.SQRT2) : NaN; }
  function clip(x, lo, hi) { return Math.min(Math.max(x, lo), hi); }
  function sign(x) { return x > 0 ? 1 : (x < 0 ? -1 : (x === 0 ? 0 : NaN)); }

  // perfkit.analysis._decide.score_test_diff
  function scoreStat(c1, n1, c0, n0, diff) {
    var nobs = n1 + n0, count = c1 + c0, p1 = c1 / n1, p0 = c0 / n0;
    var tmp3 = nobs;
    var tmp2 = (n1 + 2 * n0) * diff - nobs - count;
    var tmp1 = (c0 * diff - nobs - 2 * c0) * diff + count;
    var tmp0 = c0 * diff * (1 - diff);
    var q = Math.pow(tmp2 / (3 * tmp3), 3) - tmp1 * tmp2 / (6 * Math.pow(tmp3, 2)) + tmp0 / (2 * tmp3);
    var p = sign(q) * Math.sqrt(Math.pow(tmp2 / (3 * tmp3), 2) - tmp1 / (3 * tmp3));
    var a = (Math.PI + Math.acos(clip(q / Math.pow(p, 3), -1, 1))) / 3;
    var prop0 = 2 * p * Math.cos(a) - tmp2 / (3 * tmp3);
    var pooled = count / nobs;
    if (diff === 0) { prop0 = pooled; }
    var prop1 = diff === 0 ? pooled : prop0 + diff;
    var v = (prop1 * (1 - prop1) / n1 + prop0 * (1 - prop0) / n0) * nobs / (nobs - 1);
    var stat = (p1 - p0 - diff) / Math.sqrt(v);
    // Gart-Nam skewness correction (score_test_diff(..., skew=True))
    var mu3 = prop1 * (1 - prop1) * (1 - 2 * prop1) / (n1 * n1) - prop0 * (1 - prop0) * (1 - 2 * prop0) / (n0 * n0);
    var g = mu3 / (6 * Math.pow(v, 1.5));
    if (g !== 0) { stat = (-1 + Math.sqrt(Math.max(1 + 4 * g * (stat + g), 0))) / (2 * g); }
    return (isFinite(stat) && v > 0) ? stat : NaN;
  }

  // perfkit.analysis._decide.adjust_pvalues for one family (NaN = not tested)
  function adjust(ps, method) {
    var out = ps.map(function () { return NaN; });
    var idx = [];
    ps.forEach(function (p, i) { if (isFinite(p)) { idx.push(i); } });
    if (method === "none") { idx.forEach(function (i) { out[i] = ps[i]; }); return out; }
    var m = idx.length;
    if (!m) { return out; }
    idx.sort(function (a, b) { return ps[a] - ps[b]; });  // stable
    var adj = idx.map(function (i, k) { return ps[i]; });
    var j, k;
    if (method === "fdr_bh" || method === "fdr_by") {
      for (k = 0; k < m; k++) { adj[k] = adj[k] * m / (k + 1); }
      if (method === "fdr_by") {
        var h = 0; for (j = 1; j <= m; j++) { h += 1 / j; }
        for (k = 0; k < m; k++) { adj[k] = adj[k] * h; }
      }
      for (k = m - 2; k >= 0; k--) { adj[k] = Math.min(adj[k], adj[k + 1]); }
    } else if (method === "holm") {
      for (k = 0; k < m; k++) { adj[k] = (m - (k + 1) + 1) * adj[k]; }
      for (k = 1; k < m; k++) { adj[k] = Math.max(adj[k], adj[k - 1]); }
    } else if (method === "bonferroni") {
      for (k = 0; k < m; k++) { adj[k] = adj[k] * m; }
    }
    idx.forEach(function (i, k) { out[i] = Math.min(adj[k], 1); });
    return out;
  }

  var RANK = {minor: 1, moderate: 2, critical: 3};

  function evaluate(P, metric, threshold) {
    var S = P.settings, R = P.rows, B = R.metric.length;
    var thresholds = Object.assign({}, S.thresholds); thresholds[metric] = threshold;
    var active = {}; P.active.forEach(function (m) { active[m] = true; }); active[metric] = true;
    var relative = S.threshold_mode === "relative";
    var rows = [], pos = {};
    for (var i = 0; i < B; i++) {
      var name = R.metric[i];
      if (!active[name] || !P.metrics[name]) { continue; }
      var info = P.metrics[name], hib = info.hib;
      var c = R.value[i] === null ? NaN : R.value[i];
      var se = R.se[i] === null ? NaN : R.se[i];
      var b = R.baseline[i] === null ? NaN : R.baseline[i];
      var seb = R.baseline_se[i] === null ? NaN : R.baseline_se[i];
      var s1 = R.successes[i] === null ? NaN : R.successes[i], n1 = R.trials[i] === null ? NaN : R.trials[i];
      var s0 = R.baseline_successes[i] === null ? NaN : R.baseline_successes[i];
      var n0 = R.baseline_trials[i] === null ? NaN : R.baseline_trials[i];
      var thr = thresholds[name];
      var worse = (b - c) * hib;
      var scale = relative ? Math.abs(b) : 1;
      var badBase = !isFinite(b) || (relative && b === 0);
      var d = badBase ? NaN : (relative ? worse / Math.abs(b) : worse);
      var margin = thr * scale;
      var nullMargin = S.gating === "minimum_effect" ? margin * S.minimum_effect_fraction : 0;
      var seD = Math.sqrt(se * se + seb * seb);
      var z = seD > 0 ? (worse - nullMargin) / seD : NaN;
      if (info.test === "proportion" && isFinite(s1) && n1 > 0 && isFinite(s0) && n0 > 0) {
        var zp = -hib * scoreStat(s1, n1, s0, n0, -hib * nullMargin);
        if (isFinite(zp)) { z = zp; } else {
          var p1 = s1 / n1, p0 = s0 / n0;
          var wse = Math.sqrt(Math.max(p1 * (1 - p1), 0.25 / n1) / n1 + Math.max(p0 * (1 - p0), 0.25 / n0) / n0);
          z = (hib * (p0 - p1) - nullMargin) / wse;
        }
      }
      var p = normSf(z);
      var nRows = R.n[i] === null ? NaN : R.n[i];
      if (!isFinite(c) || badBase) { p = NaN; }
      if (info.test === "bootstrap_z" && isFinite(nRows) && nRows < P.min_rows_bootstrap_z) { p = NaN; }
      var row = {i: i, metric: name, family: R.family[i], segment: R.segment[i], window: R.window[i] === 1,
                 d: d, thr: thr, p: p, practical: isFinite(d) && d >= thr, time: R.time[i], key: R.key[i]};
      rows.push(row);
      var pk = row.family + "|" + row.segment + "|" + name;
      if (!row.window && !(pk in pos)) { pos[pk] = row; }
    }
    rows.forEach(function (r) {
      if (r.window) {
        r.partner = pos[r.family + "|" + r.segment + "|" + r.metric];
        r.practical = r.practical && !!r.partner && r.partner.practical;
      }
    });
    // one family per call: every row with a p-value, the weighted fdr_method adjustment of
    // p / w (weights: whole model vs segments) and the block Simes gate (Simes inside each
    // segment x scope block, weighted Bonferroni across blocks) of
    // perfkit.analysis._decide._family_adjust
    var fams = {};
    rows.forEach(function (r) { if (isFinite(r.p)) { (fams[r.family] = fams[r.family] || []).push(r); } });
    Object.keys(fams).forEach(function (f) {
      var members = fams[f], m = members.length, mAll = 0;
      members.forEach(function (r) { r.overall = r.segment === null || r.segment === undefined; if (r.overall) { mAll += 1; } });
      var split = mAll > 0 && mAll < m;
      var w = members.map(function (r) {
        return split ? (r.overall ? 0.5 * m / mAll : 0.5 * m / (m - mAll)) : 1;
      });
      var q = members.map(function (r, k) { return r.p / w[k]; });
      var adj = adjust(q, S.fdr_method);
      var gate = Infinity;
      if (S.fdr_method !== "none") {
        var blocks = {};
        members.forEach(function (r, k) {
          var bk = (r.overall ? "\u0000overall" : String(r.segment)) + "|" + (r.window ? "window" : "batch");
          (blocks[bk] = blocks[bk] || {p: [], w: w[k]}).p.push(r.p);
        });
        Object.keys(blocks).forEach(function (bk) {
          var b = blocks[bk], mb = b.p.length;
          var simes = Math.min.apply(null, adjust(b.p, "fdr_bh"));  // min_j m_b p_(j) / j
          gate = Math.min(gate, simes * m / (mb * b.w));
        });
      }
      members.forEach(function (r, k) { r.adj = Math.max(adj[k], Math.min(gate, 1)); });
    });
    rows.forEach(function (r) {
      var significant = isFinite(r.adj) && r.adj < S.alpha;
      r.degraded = S.gating === "none" ? r.practical : (r.practical && significant);
    });
    rows.forEach(function (r) { if (r.window && r.degraded && r.partner.degraded) { r.degraded = false; } });
    var bands = S.severity_bands;
    var alerts = rows.filter(function (r) { return r.degraded && r.metric === metric; });
    alerts.forEach(function (r) {
      r.severity = r.d >= bands.critical ? "critical" : (r.d >= bands.moderate ? "moderate" : "minor");
    });
    alerts.sort(function (a, b) { return a.time - b.time; });  // stable: replay's order
    var last = {}, fire = [], suppressed = [];
    alerts.forEach(function (r) {
      var key = r.segment + "|" + r.metric, prev = last[key];
      if (prev && r.time - prev.time <= S.cooldown_ms && (RANK[r.severity] || 0) <= (RANK[prev.severity] || 0)) {
        suppressed.push(r.key);
        return;
      }
      fire.push(r.key);
      last[key] = r;
    });
    return {fire: fire, suppressed: suppressed, count: fire.length};
  }

  window.perfkitExplorer = function (view, payload) {
    function update() {
      var metric = view.signal("explorer_metric"), threshold = view.signal("threshold") / 100;
      var out = evaluate(payload, metric, threshold);
      view.signal("fire_keys", out.fire).signal("suppressed_keys", out.suppressed)
        .signal("fire_count", out.count).runAsync();
      window.perfkitExplorerLast = {metric: metric, threshold: threshold, fire: out.fire,
                                    suppressed: out.suppressed, count: out.count};
    }
    view.addSignalListener("threshold", update);
    view.addSignalListener("explorer_metric", update);
    update();
  };
  window.perfkitExplorerEvaluate = evaluate;
})();
"""
