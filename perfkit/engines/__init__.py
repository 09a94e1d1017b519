"""Compute metric states where the data lives (DuckDB over Parquet, PySpark, pandas).

Every perfkit metric is a function of a small mergeable state. :func:`compute_states`
groups the rows by batch / model / segment / time bucket inside the engine and returns
one state per group, so only the states - never the rows - come back to Python::

    frame = compute_states("preds/*.parquet", task="binary", proba="p",
                           group_by=("batch_id", "segment"))
    week = merge_states(frame["state"])          # exact re-aggregation
    evaluate(week)["roc_auc"]
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from perfkit.engines._sql import TASKS, TIME_COLUMN, TIME_UNITS, Spec, compute_with_runner
from perfkit.exceptions import EngineError, InputTypeError, UnknownTaskError, ValidationError
from perfkit.metrics import compute_state

__all__ = ["ENGINES", "compute_states", "states_from_parquet"]

logger = logging.getLogger("perfkit")

#: Engine names accepted by :func:`compute_states`.
ENGINES = ("duckdb", "spark", "pandas")


def _spec(task, y_true, y_pred, proba, group_by, classes, positive_label, time_bucket, timestamp_col) -> Spec:
    if task not in TASKS:
        raise UnknownTaskError(f"task must be one of {TASKS}, got {task!r}", parameter="task")
    if isinstance(group_by, str):
        group_by = (group_by,)
    group_by = tuple(group_by or ())
    if len(set(group_by)) != len(group_by):
        raise ValidationError(f"group_by has duplicates: {list(group_by)}", parameter="group_by")
    if time_bucket is not None and time_bucket not in TIME_UNITS:
        raise ValidationError(
            f"time_bucket must be one of {sorted(TIME_UNITS)} or None, got {time_bucket!r}",
            parameter="time_bucket",
        )
    if time_bucket is not None and TIME_COLUMN in group_by:
        raise ValidationError(
            f"group_by may not contain {TIME_COLUMN!r} together with time_bucket", parameter="group_by"
        )
    if proba is not None and not isinstance(proba, (str, Mapping, Sequence)):
        raise InputTypeError(
            f"proba must be a column name, a dict class -> column or a list, got {type(proba).__name__}",
            parameter="proba",
        )
    if task == "regression" and proba is not None:
        raise InputTypeError("proba is not used for regression", parameter="proba")
    if task == "regression" and y_pred is None:
        raise InputTypeError("y_pred is required for regression", parameter="y_pred")
    return Spec(
        task=task,
        y_true=y_true,
        y_pred=y_pred,
        proba=proba,
        group_by=group_by,
        classes=None if classes is None else tuple(classes),
        positive_label=positive_label,
        time_bucket=time_bucket,
        timestamp_col=timestamp_col,
    )


def compute_states(
    data: Any,
    *,
    engine: str = "duckdb",
    task: str,
    y_true: str | None = "y_true",
    y_pred: str | None = "y_pred",
    proba: str | Mapping | Sequence | None = None,
    group_by: Sequence[str] | str = ("batch_id",),
    classes: Sequence | None = None,
    positive_label: Any = None,
    time_bucket: str | None = None,
    timestamp_col: str = "timestamp",
    with_dicts: bool = False,
    session: Any = None,
) -> pd.DataFrame:
    """One perfkit state per group, computed inside an engine.

    Parameters
    ----------
    data : str, path, list of paths, duckdb relation, pandas.DataFrame or pyspark DataFrame
        Parquet path or glob (read by the engine, rows never enter Python for DuckDB /
        Spark), a DuckDB relation, a pandas frame or a PySpark DataFrame.
    engine : {"duckdb", "spark", "pandas"}, default "duckdb"
        ``"pandas"`` loads the rows and calls :func:`perfkit.metrics.compute_state` per
        group (the in-memory reference; its states carry the exact AUC).
    task : {"binary", "multiclass", "regression"}
    y_true, y_pred : str or None
        Column names. ``y_true=None``: labels not arrived (prediction-only states);
        ``y_pred=None`` (classification): the arg-max of the scores.
    proba : str, dict or list, optional
        Binary: the column of P(positive). Multiclass: dict ``class -> column`` or a list
        of columns in sorted class order.
    group_by : sequence of str, default ("batch_id",)
        Group columns (batch key, model, segment ...); ``()`` for one state overall.
    classes : sequence, optional
        The class set; default: the distinct labels of the whole data (sorted).
    positive_label : optional
        Positive class of a binary task (default: the larger label).
    time_bucket : {"1h", "1d", "1w"}, optional
        Also group by the hour / day / ISO week (Monday) of ``timestamp_col``; the output
        column is ``time_bucket``.
    timestamp_col : str, default "timestamp"
    with_dicts : bool, default False
        Add a ``state_dict`` column (``state.to_dict()``), ready for storage.
    session : duckdb connection or SparkSession, optional
        The engine session (default: a new DuckDB connection / the active Spark session).

    Returns
    -------
    pandas.DataFrame
        The group columns (sorted) and ``state`` (ClassificationState / RegressionState).
        Engine states carry histograms instead of the exact AUC (``auc_exact=None``), so
        ``evaluate`` reports the AUC from histograms with its error bound.

    Raises
    ------
    ValidationError
        Names the parameter: unknown columns, NaN / NULL values, probabilities out of
        range, labels outside ``classes``, empty data.
    EngineError
        The engine is not installed (names the extra to install) or a query failed.

    Examples
    --------
    >>> import pandas as pd
    >>> from perfkit.metrics import evaluate
    >>> df = pd.DataFrame({"batch_id": [1, 1, 1, 2, 2, 2],
    ...                    "y_true": [0, 1, 1, 0, 1, 0], "y_pred": [0, 1, 0, 0, 1, 1],
    ...                    "p": [0.2, 0.9, 0.4, 0.1, 0.7, 0.6]})
    >>> out = compute_states(df, task="binary", proba="p")
    >>> out["batch_id"].tolist()
    [1, 2]
    >>> out["state"][0].confusion.tolist()
    [[1, 0], [1, 1]]
    >>> round(evaluate(out["state"][1])["accuracy"].value, 4)
    0.6667
    """
    if engine not in ENGINES:
        raise ValidationError(f"engine must be one of {ENGINES}, got {engine!r}", parameter="engine")
    spec = _spec(task, y_true, y_pred, proba, group_by, classes, positive_label, time_bucket, timestamp_col)
    if engine == "pandas":
        out = _pandas_states(data, spec)
    elif engine == "duckdb":
        from perfkit.engines.duckdb import DuckDBRunner

        out = compute_with_runner(spec, DuckDBRunner(data, session))
    else:
        from perfkit.engines.spark import SparkRunner

        runner = SparkRunner(data, session)
        try:
            out = compute_with_runner(spec, runner)
        finally:
            runner.close()
    if with_dicts:
        out["state_dict"] = [s.to_dict() for s in out["state"]]
    return out


def states_from_parquet(path: str | os.PathLike | Sequence[str], *, engine: str = "duckdb", **kwargs: Any) -> pd.DataFrame:
    """:func:`compute_states` over a Parquet path or glob (Spark reads it on the cluster).

    Examples
    --------
    >>> import pandas as pd, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> pd.DataFrame({"batch_id": [1, 1, 2], "y_true": [1.0, 2.0, 3.0],
    ...               "y_pred": [1.5, 2.0, 2.0]}).to_parquet(os.path.join(d, "a.parquet"))
    >>> out = states_from_parquet(os.path.join(d, "*.parquet"), task="regression")
    >>> [s.n for s in out["state"]]
    [2, 1]
    """
    if engine == "spark":
        return compute_states(path, engine="spark", **kwargs)
    if engine == "pandas":
        try:
            frame = pd.read_parquet(path) if not isinstance(path, (list, tuple)) else pd.concat(
                [pd.read_parquet(p) for p in path], ignore_index=True
            )
        except (OSError, ValueError) as exc:
            raise EngineError(f"could not read Parquet {path!r}: {exc}") from exc
        return compute_states(frame, engine="pandas", **kwargs)
    return compute_states(path, engine=engine, **kwargs)


# ------------------------------------------------------------------ in-memory engine
def _time_floor(ts: pd.Series, unit: str) -> pd.Series:
    if unit == "hour":
        return ts.dt.floor("h")
    if unit == "day":
        return ts.dt.floor("D")
    day = ts.dt.floor("D")
    return day - pd.to_timedelta(day.dt.day_of_week, unit="D")


def _pandas_states(data: Any, spec: Spec) -> pd.DataFrame:
    if isinstance(data, (str, os.PathLike)):
        import glob

        files = sorted(glob.glob(os.fspath(data))) or [os.fspath(data)]
        data = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    if not isinstance(data, pd.DataFrame):
        raise InputTypeError(
            f"engine='pandas' needs a pandas DataFrame or Parquet path, got {type(data).__name__}",
            parameter="data",
        )
    frame = data
    keys = list(spec.group_by)
    if spec.time_bucket is not None:
        frame = frame.assign(**{TIME_COLUMN: _time_floor(frame[spec.timestamp_col], TIME_UNITS[spec.time_bucket])})
        keys.append(TIME_COLUMN)
    for name, parameter in ((spec.y_true, "y_true"), (spec.y_pred, "y_pred")):
        if name is not None and name not in frame.columns:
            raise ValidationError(f"{parameter}={name!r} is not a column of the data", parameter=parameter)
    if len(frame) == 0:
        from perfkit.exceptions import EmptyBatchError

        raise EmptyBatchError("the data has no rows", parameter="data")
    classes = spec.classes
    proba_cols: list[str] | str | None = None
    if spec.task != "regression":
        if isinstance(spec.proba, Mapping):
            proba_cols = None  # DataFrame with class-labelled columns below
        elif isinstance(spec.proba, str):
            proba_cols = spec.proba
        elif spec.proba is not None:
            proba_cols = list(spec.proba)
        if classes is None and not isinstance(spec.proba, Mapping):
            seen: set = set()
            for c in (spec.y_true, spec.y_pred):
                if c is not None:
                    seen |= set(pd.unique(frame[c]).tolist())
            if len(seen) >= 2:
                classes = tuple(seen)
    groups = frame.groupby(keys, sort=True, dropna=False) if keys else [((), frame)]
    rows, states = [], []
    for key, g in groups:
        if isinstance(spec.proba, Mapping):
            pr = pd.DataFrame({c: g[col].to_numpy() for c, col in spec.proba.items()})
        elif isinstance(proba_cols, str):
            pr = g[proba_cols].to_numpy()
        elif proba_cols is not None:
            pr = np.column_stack([g[c].to_numpy() for c in proba_cols])
        else:
            pr = None
        states.append(
            compute_state(
                None if spec.y_true is None else g[spec.y_true].to_numpy(),
                None if spec.y_pred is None else g[spec.y_pred].to_numpy(),
                pr,
                task=spec.task,
                classes=classes,
                positive_label=spec.positive_label,
            )
        )
        rows.append(key if isinstance(key, tuple) else (key,))
    out = pd.DataFrame(rows, columns=keys) if keys else pd.DataFrame(index=range(1))
    out["state"] = states
    return out

