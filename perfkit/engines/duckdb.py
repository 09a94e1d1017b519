"""DuckDB engine: states computed by SQL over Parquet, a relation or a pandas frame.

Parquet is scanned by ``read_parquet`` inside DuckDB; rows never enter Python, only the
per-group results (one row per group, per label pair and per occupied histogram bucket).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from perfkit.engines._sql import DUCKDB, Runner
from perfkit.exceptions import EngineError, InputTypeError

__all__ = ["DuckDBRunner", "kind_of_duckdb_type"]

_SRC = "__perfkit_src"


def _import_duckdb():
    try:
        import duckdb
    except ImportError as exc:
        raise EngineError(
            "engine='duckdb' needs the duckdb package: pip install perfkit[engines]"
        ) from exc
    return duckdb


def kind_of_duckdb_type(t: str) -> str:
    """Coarse kind of a DuckDB type name (``DOUBLE`` -> ``float64``)."""
    t = t.upper()
    if t in ("DOUBLE", "FLOAT8") or t.startswith("DECIMAL"):
        return "float64"
    if t in ("FLOAT", "FLOAT4", "REAL"):
        return "float32"
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
             "UINTEGER", "UBIGINT", "UHUGEINT"):
        return "int"
    if t == "BOOLEAN":
        return "bool"
    if t == "VARCHAR":
        return "string"
    if t.startswith("TIMESTAMP") or t == "DATE":
        return "timestamp"
    return "other"


class DuckDBRunner(Runner):
    """Runs the plan's SQL over one DuckDB relation.

    Parameters
    ----------
    data : str, os.PathLike, list of paths, duckdb.DuckDBPyRelation or pandas.DataFrame
        Parquet path(s) or glob(s), a relation, or a frame DuckDB scans in place.
    connection : duckdb.DuckDBPyConnection, optional
        Connection to use (default: a new in-memory one; ignored for a relation).
    """

    dialect = DUCKDB

    def __init__(self, data: Any, connection: Any = None) -> None:
        duckdb = _import_duckdb()
        if isinstance(data, duckdb.DuckDBPyRelation):
            self.relation = data
        else:
            con = connection if connection is not None else duckdb.connect()
            if isinstance(data, (str, os.PathLike)) or (
                isinstance(data, Sequence) and data and all(isinstance(x, (str, os.PathLike)) for x in data)
            ):
                paths = [os.fspath(data)] if isinstance(data, (str, os.PathLike)) else [os.fspath(x) for x in data]
                try:
                    self.relation = con.read_parquet(paths)
                except duckdb.Error as exc:
                    raise EngineError(f"DuckDB could not read Parquet {paths}: {exc}") from exc
            elif isinstance(data, pd.DataFrame):
                self.relation = con.from_df(data)
            else:
                raise InputTypeError(
                    "data must be a Parquet path / glob, a duckdb relation or a pandas DataFrame for "
                    f"engine='duckdb', got {type(data).__name__}",
                    parameter="data",
                )
        self.columns = {
            c: kind_of_duckdb_type(str(t))
            for c, t in zip(self.relation.columns, self.relation.types, strict=True)
        }

    def query(self, sql: str) -> pd.DataFrame:
        duckdb = _import_duckdb()
        try:
            return self.relation.query(_SRC, sql.replace("{src}", _SRC)).df()
        except duckdb.Error as exc:
            raise EngineError(f"DuckDB query failed: {exc}") from exc
