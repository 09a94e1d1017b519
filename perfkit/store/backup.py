"""Export a store to JSON and import it into an empty store.

The export is JSON lines (or, with ``lines=False``, one JSON document with the same
objects under ``"rows"``). The first line is a header::

    {"table": "_header", "format": "perfkit-store", "format_version": 1,
     "schema_revision": "0003_json_payloads", "counts": {...}}

Every following line is one row of one table: ``{"table": "<table name>", <columns>}``,
tables in the order batches, baselines, alerts, alert deliveries, models, rows by primary
key. Exports of the older schema revision ``0001_initial`` import too (new columns get
their defaults).
Datetimes are ISO 8601 UTC strings; JSON cells are written as stored (non-finite floats
and datetimes tagged, see :mod:`perfkit.store.records`). Exporting, importing into a new
store of the same database kind and exporting again gives an identical file.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from perfkit._files import atomic_text_file, check_output_path
from perfkit.exceptions import SchemaVersionError, StoreError, ValidationError
from perfkit.store.records import encode_json
from perfkit.store.schema import (
    SCHEMA_REVISION,
    UTCDateTime,
    alert_deliveries,
    alerts,
    baselines,
    batches,
    models,
)

__all__ = ["EXPORT_FORMAT", "EXPORT_TABLES", "export_json", "import_json"]

logger = logging.getLogger("perfkit")

EXPORT_FORMAT = "perfkit-store"
_FORMAT_VERSION = 1
EXPORT_TABLES: tuple[sa.Table, ...] = (batches, baselines, alerts, alert_deliveries, models)
"""Tables written by :func:`export_json`, in order (parents before children)."""

_TABLES = {table.name: table for table in EXPORT_TABLES}
_ORDER = {
    "perfkit_batches": ("id",),
    "perfkit_baselines": ("id",),
    "perfkit_alerts": ("created_at", "alert_id"),
    "perfkit_alert_deliveries": ("alert_id", "channel"),
    "perfkit_models": ("model",),
}
_READABLE_REVISIONS = ("0001_initial", "0002_outbox_models", SCHEMA_REVISION)  # the same export format
_DEFAULTS = {"perfkit_alert_deliveries": {"orphaned": 0}}
_CHUNK = 500


def _is_datetime(column: sa.Column) -> bool:
    return isinstance(column.type, UTCDateTime)


def _is_json(column: sa.Column) -> bool:
    return isinstance(column.type, sa.JSON)


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, allow_nan=False, separators=(",", ":"))


def _export_rows(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    for table in EXPORT_TABLES:
        query = sa.select(table).order_by(*(table.c[name] for name in _ORDER[table.name]))
        for row in conn.execute(query):
            out: dict[str, Any] = {"table": table.name}
            for column in table.c:
                value = row._mapping[column]
                if value is not None and _is_datetime(column):
                    value = value.isoformat()
                elif _is_json(column):
                    value = encode_json(value, column.name)
                out[column.name] = value
            yield out


def export_json(store: Any, path: str | os.PathLike[str], *, lines: bool = True) -> int:
    """Write every batch, baseline, alert and delivery of ``store`` to ``path``.

    Parameters
    ----------
    store : perfkit.store.Store
    path : str or path-like
        Output file (overwritten).
    lines : bool, default True
        JSON lines; ``False`` writes one JSON document ``{"header": ..., "rows": [...]}``.

    Returns
    -------
    int
        Number of rows written (header excluded).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from datetime import datetime, timezone
    >>> from perfkit.store import BatchRecord, Store
    >>> src = Store("sqlite://")
    >>> _ = src.append(BatchRecord("m", datetime(2024, 1, 1, tzinfo=timezone.utc), "binary",
    ...                            {"tp": 1}, {"recall": 1.0}, 1, batch_id="b"))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "store.jsonl"
    >>> export_json(src, path)
    1
    >>> dst = Store("sqlite://")
    >>> import_json(dst, path), dst.get("m", "b").state
    (1, {'tp': 1})
    """
    path = check_output_path(path)
    with store._errors("export_json"), store._read() as conn:
        counts = {
            table.name: int(conn.execute(sa.select(sa.func.count()).select_from(table))
                            .scalar_one())
            for table in EXPORT_TABLES
        }
        header = {
            "table": "_header",
            "format": EXPORT_FORMAT,
            "format_version": _FORMAT_VERSION,
            "schema_revision": SCHEMA_REVISION,
            "counts": counts,
        }
        n = 0
        try:
            with atomic_text_file(path) as fh:
                if lines:
                    fh.write(_dump(header) + "\n")
                    for row in _export_rows(conn):
                        fh.write(_dump(row) + "\n")
                        n += 1
                else:
                    rows = list(_export_rows(conn))
                    n = len(rows)
                    fh.write(_dump({"header": header, "rows": rows}) + "\n")
        except OSError as exc:  # unwritable directory, disk full ...: no half-written file is left
            raise ValidationError(f"path {str(path)!r} cannot be written: {exc}", parameter="path") from exc
    logger.info("exported %d rows from %s to %s", n, store.url, path)
    return n


def _read_export(path: pathlib.Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    text = path.read_text(encoding="utf-8")
    try:
        first, _, rest = text.partition("\n")
        head = json.loads(first) if first.strip() else {}
        if isinstance(head, dict) and head.get("table") == "_header":
            rows = [json.loads(line) for line in rest.splitlines() if line.strip()]
            return head, rows
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path} is not a perfkit store export: {exc}",
                              parameter="path") from exc
    if not isinstance(document, dict) or "header" not in document:
        raise ValidationError(f"{path} is not a perfkit store export", parameter="path")
    return document["header"], document.get("rows", [])


def _decode_row(table: sa.Table, row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    defaults = _DEFAULTS.get(table.name, {})
    for column in table.c:
        value = row.get(column.name, defaults.get(column.name))
        if value is not None and _is_datetime(column):
            value = datetime.fromisoformat(value)
        out[column.name] = value
    return out


def import_json(store: Any, path: str | os.PathLike[str]) -> int:
    """Load an export written by :func:`export_json` into the EMPTY ``store``.

    Everything is inserted in one transaction; primary keys are kept.

    Returns
    -------
    int
        Number of rows inserted.

    Raises
    ------
    StoreError
        If the store is not empty.
    SchemaVersionError
        If the export was written with another schema revision.
    ValidationError
        If the file is not a perfkit export.
    """
    path = pathlib.Path(path)
    header, rows = _read_export(path)
    if header.get("format") != EXPORT_FORMAT:
        raise ValidationError(f"{path} is not a perfkit store export", parameter="path")
    if header.get("schema_revision") not in _READABLE_REVISIONS:
        raise SchemaVersionError(
            f"{path} was exported with schema revision {header.get('schema_revision')!r}; "
            f"this perfkit imports revision {SCHEMA_REVISION!r}"
        )
    by_table: dict[str, list[dict[str, Any]]] = {name: [] for name in _TABLES}
    for row in rows:
        name = row.get("table")
        if name not in _TABLES:
            raise ValidationError(f"{path} has a row of unknown table {name!r}",
                                  parameter="path")
        by_table[name].append(_decode_row(_TABLES[name], row))
    expected = header.get("counts")
    if expected is not None:
        found = {name: len(items) for name, items in by_table.items()}
        if {k: v for k, v in found.items() if v or k in expected} != expected:
            raise ValidationError(
                f"{path} is truncated or corrupt: header counts {expected}, rows {found}",
                parameter="path",
            )
    suppressed = [
        {"b_alert_id": r["alert_id"], "b_suppressed_by": r["suppressed_by"]}
        for r in by_table["perfkit_alerts"]
        if r["suppressed_by"] is not None
    ]
    for r in by_table["perfkit_alerts"]:
        r["suppressed_by"] = None
    with store._errors("import_json"), store._write() as conn:
        for table in EXPORT_TABLES:
            if conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one():
                raise StoreError(
                    f"import_json needs an empty store, but {store.url} has rows in "
                    f"{table.name}"
                )
        for table in EXPORT_TABLES:
            items = by_table[table.name]
            for start in range(0, len(items), _CHUNK):
                conn.execute(table.insert(), items[start : start + _CHUNK])
        if suppressed:
            conn.execute(
                alerts.update()
                .where(alerts.c.alert_id == sa.bindparam("b_alert_id"))
                .values(suppressed_by=sa.bindparam("b_suppressed_by")),
                suppressed,
            )
        if store.dialect == "postgresql":
            for table in (batches, baselines):
                conn.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM {table.name}"
                    )
                )
    n = sum(len(items) for items in by_table.values())
    logger.info("imported %d rows from %s into %s", n, path, store.url)
    return n
