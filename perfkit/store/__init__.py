"""The perfkit history store: batch records, baselines and alerts in SQLite or PostgreSQL.

>>> from perfkit.store import Store
>>> with Store("sqlite://") as store:
...     store.count()
0
"""

from __future__ import annotations

from perfkit.store.backup import export_json, import_json
from perfkit.store.records import ALL_SEGMENTS, BaselineRecord, BatchRecord
from perfkit.store.schema import SCHEMA_REVISION
from perfkit.store.sql import (
    ALERT_COLUMNS,
    BASELINE_COLUMNS,
    DEFAULT_URL,
    HISTORY_COLUMNS,
    METRICS_FRAME_COLUMNS,
    Store,
    open_store,
)

__all__ = [
    "ALERT_COLUMNS",
    "ALL_SEGMENTS",
    "BASELINE_COLUMNS",
    "DEFAULT_URL",
    "HISTORY_COLUMNS",
    "METRICS_FRAME_COLUMNS",
    "SCHEMA_REVISION",
    "BaselineRecord",
    "BatchRecord",
    "Store",
    "export_json",
    "import_json",
    "open_store",
]
