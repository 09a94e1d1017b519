"""PySpark engine: states computed by Spark SQL on a DataFrame; only states reach the driver.

The DataFrame is registered as a temporary view and queried with the same SQL the DuckDB
engine uses. Results are one row per group (moments), per group x label pair (confusion)
and per group x occupied histogram bucket.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import Any

import pandas as pd

from perfkit.engines._sql import SPARK, Runner
from perfkit.exceptions import EngineError, InputTypeError

__all__ = ["SparkRunner", "kind_of_spark_type"]


def _import_pyspark():
    try:
        from pyspark.sql import DataFrame, SparkSession
    except ImportError as exc:
        raise EngineError("engine='spark' needs pyspark (and Java): pip install perfkit[spark]") from exc
    return DataFrame, SparkSession


def kind_of_spark_type(t: str) -> str:
    """Coarse kind of a Spark simple type string (``double`` -> ``float64``)."""
    t = t.lower()
    if t == "double" or t.startswith("decimal"):
        return "float64"
    if t == "float":
        return "float32"
    if t in ("tinyint", "smallint", "int", "bigint", "byte", "short", "long"):
        return "int"
    if t == "boolean":
        return "bool"
    if t == "string" or t.startswith("varchar") or t.startswith("char"):
        return "string"
    if t.startswith("timestamp") or t == "date":
        return "timestamp"
    return "other"


class SparkRunner(Runner):
    """Runs the plan's SQL over a Spark DataFrame (via a temporary view).

    Parameters
    ----------
    data : pyspark.sql.DataFrame, str, list of str or pandas.DataFrame
        A DataFrame, Parquet path(s) read with ``spark.read.parquet``, or a small pandas
        frame (converted with ``createDataFrame``).
    session : pyspark.sql.SparkSession, optional
        Default: the DataFrame's session, else the active session.
    """

    dialect = SPARK

    def __init__(self, data: Any, session: Any = None) -> None:
        DataFrame, SparkSession = _import_pyspark()
        if isinstance(data, DataFrame):
            spark = session or data.sparkSession
            df = data
        else:
            spark = session or SparkSession.getActiveSession()
            if spark is None:
                raise EngineError(
                    "engine='spark' needs a SparkSession: create one first or pass session=spark"
                )
            if isinstance(data, (str, os.PathLike)) or (
                isinstance(data, Sequence) and data and all(isinstance(x, (str, os.PathLike)) for x in data)
            ):
                paths = [os.fspath(data)] if isinstance(data, (str, os.PathLike)) else [os.fspath(x) for x in data]
                df = spark.read.parquet(*paths)
            elif isinstance(data, pd.DataFrame):
                df = spark.createDataFrame(data)
            else:
                raise InputTypeError(
                    "data must be a pyspark DataFrame, Parquet path(s) or a pandas DataFrame for "
                    f"engine='spark', got {type(data).__name__}",
                    parameter="data",
                )
        self.spark = spark
        self.view = f"__perfkit_src_{uuid.uuid4().hex}"
        df.createOrReplaceTempView(self.view)
        self.columns = {name: kind_of_spark_type(t) for name, t in df.dtypes}

    def query(self, sql: str) -> pd.DataFrame:
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        conf = self.spark.conf
        key = "spark.sql.execution.arrow.pyspark.enabled"
        before = conf.get(key, "false")
        try:
            # the histogram result can have many rows: fetch it through Arrow
            conf.set(key, "true")
            return self.spark.sql(sql.replace("{src}", self.view)).toPandas()
        except (PySparkException, Py4JError) as exc:
            raise EngineError(f"Spark query failed: {exc}") from exc
        finally:
            conf.set(key, before)

    def close(self) -> None:
        """Drop the temporary view."""
        self.spark.catalog.dropTempView(self.view)
