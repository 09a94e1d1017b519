"""Store methods shaping history: DataFrames, states and merged windows."""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from perfkit.store.records import (
    ALL_SEGMENTS,
    BatchRecord,
)
from perfkit.store.schema import (
    batches,
)

if TYPE_CHECKING:
    import pandas as pd

    from perfkit.metrics.state import State

from perfkit.store._common import (
    _EPOCH,
    HISTORY_COLUMNS,
    METRICS_FRAME_COLUMNS,
    _bulk,
    _check_name,
    _keep_none,
    _loads,
    _parse_freq,
    _sqlite_time,
    _state_text,
    _time_id,
    _unseg,
)

# states parsed per chunk by merged_state (a year of hourly states: 35 chunks)
_MERGE_CHUNK = 256


class _Frames:
    """Methods of :class:`perfkit.store.Store` (see there)."""

    def history(
        self,
        model: str | None = None,
        *,
        segment: Any = ALL_SEGMENTS,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Return one row per batch, with value and interval columns per metric.

        Columns are :data:`HISTORY_COLUMNS` followed, for every metric ``M`` present in
        the records (in alphabetical order, on every backend), by ``M``, ``M_ci_lower``,
        ``M_ci_upper`` and ``M_se`` (NaN where a record has no value). ``timestamp`` is
        UTC-aware; ``segment`` is None for the whole population. Filters as in
        :meth:`records`.
        """
        import pandas as pd

        cols = [c for c in batches.c if c.name in HISTORY_COLUMNS or c.name == "metrics"]
        if self.dialect == "sqlite":  # parse the fixed-width UTC text in bulk below
            cols = [sa.type_coerce(c, sa.String).label("timestamp")
                    if c.name == "timestamp" else c for c in cols]
        query = sa.select(*cols).where(*self._batch_filters(model, segment, start, end))
        with self._errors("history"), _bulk(), self._read() as conn:
            result = conn.execute(query)
            keys = list(result.keys())
            rows = result.all()
        rows.sort(key=operator.itemgetter(keys.index("timestamp"), keys.index("id")))
        columns = dict(zip(keys, zip(*rows, strict=True), strict=True)) if rows else {}
        data: dict[str, list[Any]] = {
            name: list(columns.get(name, ())) for name in HISTORY_COLUMNS
        }
        data["segment"] = [_unseg(s) for s in data["segment"]]
        data["labels_pending"] = [bool(v) for v in data["labels_pending"]]
        all_metrics: list[dict] = list(columns.get("metrics", ()))
        names = sorted(set().union(*all_metrics)) if all_metrics else []
        empty: dict[str, Any] = {}
        metric_data: dict[str, Any] = {}
        for name in names:
            entries = [m.get(name) or empty for m in all_metrics]
            for suffix, key in (("", "value"), ("_ci_lower", "ci_lower"),
                                ("_ci_upper", "ci_upper"), ("_se", "se")):
                metric_data[name + suffix] = pd.array(
                    [e.get(key) for e in entries], dtype="Float64"
                ).to_numpy(dtype="float64", na_value=math.nan)
        frame = pd.DataFrame(data, columns=list(HISTORY_COLUMNS))
        _keep_none(frame, ("model_version", "segment"), data)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
        frame["performance_score"] = frame["performance_score"].astype("float64")
        frame["labels_pending"] = frame["labels_pending"].astype(bool)
        if metric_data:
            frame = pd.concat([frame, pd.DataFrame(metric_data, index=frame.index)], axis=1)
        return frame

    def metrics_frame(
        self,
        model: str | None = None,
        *,
        segment: Any = ALL_SEGMENTS,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Return one row per (batch, metric) with columns :data:`METRICS_FRAME_COLUMNS`.

        Filters as in :meth:`records`; rows ordered by timestamp, id, then metric name.
        """
        import pandas as pd

        query = (
            sa.select(batches.c.batch_id, batches.c.timestamp, batches.c.segment,
                      batches.c.metrics)
            .where(*self._batch_filters(model, segment, start, end))
            .order_by(batches.c.timestamp, batches.c.id)
        )
        with self._errors("metrics_frame"), self._read() as conn:
            rows = conn.execute(query).all()
        out = [
            (row.batch_id, row.timestamp, _unseg(row.segment), name, entry.get("value"),
             entry.get("ci_lower"), entry.get("ci_upper"), entry.get("se"), entry.get("reason"))
            for row in rows
            for name, entry in sorted(row.metrics.items())
        ]
        frame = pd.DataFrame(out, columns=list(METRICS_FRAME_COLUMNS))
        _keep_none(frame, ("segment", "reason"), {
            "segment": [r[2] for r in out], "reason": [r[8] for r in out]})
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        for column in ("value", "ci_lower", "ci_upper", "se"):
            frame[column] = pd.array(frame[column].tolist(), dtype="float64").astype("float64")
        return frame

    def states(
        self,
        model: str | None = None,
        *,
        segment: Any = ALL_SEGMENTS,
        start: datetime | None = None,
        end: datetime | None = None,
        include_pending: bool = False,
    ) -> list[tuple[datetime, dict]]:
        """Return ``(timestamp, state)`` of the matching records, by timestamp then id.

        The fast read path for merging long histories: only the two columns are read,
        states are parsed with orjson when it is installed, and no :class:`BatchRecord`
        is built. Filters as in :meth:`records`, except that prediction-only records are
        left out unless ``include_pending``.

        Returns
        -------
        list of (datetime, dict)
            UTC-aware timestamps and state dicts (as given to :meth:`append`).

        Examples
        --------
        >>> from perfkit.store import BatchRecord, Store
        >>> from datetime import datetime, timezone
        >>> store = Store("sqlite://")
        >>> ts = datetime(2024, 1, 1, tzinfo=timezone.utc)
        >>> _ = store.append(BatchRecord("m", ts, "binary", {"tp": 3}, {}, 3, batch_id="a"))
        >>> _ = store.append(BatchRecord("m", ts, "binary", {}, {}, 3, batch_id="b",
        ...                              labels_pending=True))
        >>> store.states("m")
        [(datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc), {'tp': 3})]
        """
        clauses = self._batch_filters(model, segment, start, end)
        if not include_pending:
            clauses.append(batches.c.labels_pending.is_(sa.false()))
        timestamp, state = batches.c.timestamp, batches.c.state
        sqlite = self.dialect == "sqlite"
        if sqlite:  # raw text: parsed below, without SQLAlchemy's per-value processors
            timestamp = sa.type_coerce(timestamp, sa.String)
            state = sa.type_coerce(state, sa.Text)
        # Sorted here, not by the database: across segments SQLite would copy every
        # row, state included, into a temporary B-tree to sort it.
        query = sa.select(timestamp, batches.c.id, state).where(*clauses)
        with self._errors("states"), _bulk():
            with self._read() as conn:
                rows = conn.execute(query).all()
            rows.sort(key=_time_id)
            if not sqlite:
                return [(ts, st) for ts, _, st in rows]
            return [(_sqlite_time(ts), _loads(st)) for ts, _, st in rows]

    def window_states(
        self,
        model: str,
        freq: str | timedelta = "7D",
        *,
        segment: Any = ALL_SEGMENTS,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[tuple[datetime, State]]:
        """Merge the labelled states of ``model`` into one state per time window.

        Windows are ``freq`` long and aligned on the Unix epoch, like
        ``Series.dt.floor(freq)`` in pandas (so ``"7D"`` windows start on Thursdays);
        windows without labelled records are left out. Each window is merged with
        :func:`perfkit.metrics.state.merge_dicts_to_state`.

        Parameters
        ----------
        model : str
            The model.
        freq : str or timedelta, default "7D"
            Window length: a positive timedelta or a string such as ``"7D"``, ``"1D"``,
            ``"6h"``, ``"30min"``, ``"90s"``.
        segment, start, end
            Filters as in :meth:`records`; see :meth:`window_state` about
            ``segment=ALL_SEGMENTS``.

        Returns
        -------
        list of (datetime, State)
            Window start (UTC) and merged state, ordered by window start.

        Raises
        ------
        ValidationError
            If ``freq`` is not a positive duration.

        Examples
        --------
        >>> from perfkit.store import BatchRecord, Store
        >>> from datetime import datetime, timedelta, timezone
        >>> from perfkit.metrics import compute_state
        >>> store = Store("sqlite://")
        >>> t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
        >>> for h in range(0, 72, 12):
        ...     state = compute_state([0, 1, 1], [0, 1, 0]).to_dict()
        ...     _ = store.append(BatchRecord("m", t0 + timedelta(hours=h), "binary",
        ...                                  state, {}, 3, batch_id=f"b{h}"))
        >>> [(w.day, s.n) for w, s in store.window_states("m", "1D")]
        [(1, 6), (2, 6), (3, 6)]
        """
        from perfkit.metrics.state import merge_dicts_to_state

        _check_name(model, "model")
        step = _parse_freq(freq)
        buckets: dict[int, list[dict]] = {}
        with _bulk():
            for ts, state in self.states(model, segment=segment, start=start, end=end):
                buckets.setdefault((ts - _EPOCH) // step, []).append(state)
            return [(_EPOCH + key * step, merge_dicts_to_state(group))
                    for key, group in sorted(buckets.items())]

    def merged_state(self, records: Sequence[BatchRecord], *, for_evaluation: bool = False) -> State:
        """Merge the states of ``records`` (as returned by :meth:`records`) into one state.

        States that :meth:`records` left as stored text are parsed here and not kept on the
        records, so a year of batches is merged without holding every parsed state; they are
        parsed in chunks, the histograms of one chunk added on a pool thread while the next
        is parsed (:func:`perfkit.metrics.state.merge_dict_chunks_to_state`: the same state);
        ``for_evaluation=True`` also skips the fields only label-free estimates read (see
        :func:`perfkit.metrics.state.merge_dicts_to_state`).

        Raises
        ------
        StateError
            If ``records`` is empty or their states do not merge.

        Examples
        --------
        >>> from perfkit.store import BatchRecord, Store
        >>> from datetime import datetime, timezone
        >>> from perfkit.metrics import compute_state
        >>> store = Store("sqlite://")
        >>> for i in range(3):
        ...     _ = store.append(BatchRecord("m", datetime(2024, 1, 1, i, tzinfo=timezone.utc), "binary",
        ...                                  compute_state([0, 1], [0, 1]).to_dict(), {}, 2, batch_id=f"b{i}"))
        >>> store.merged_state(store.records("m")).confusion.tolist()
        [[3, 0], [0, 3]]
        """
        from perfkit.metrics.state import merge_dict_chunks_to_state, state_dict_for_evaluation

        parse = functools.partial(state_dict_for_evaluation, loads=_loads) if for_evaluation else _loads

        def chunks():  # parsed chunk by chunk: the histograms of one are added while the next is parsed
            for lo in range(0, len(records), _MERGE_CHUNK):
                yield [r.state if (text := _state_text(r)) is None else parse(text)
                       for r in records[lo:lo + _MERGE_CHUNK]]

        with _bulk():
            return merge_dict_chunks_to_state(chunks(), for_evaluation=for_evaluation)

    def window_state(
        self,
        model: str,
        *,
        segment: Any = ALL_SEGMENTS,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> dict | None:
        """Merge the states of the matching labelled records into one state.

        Uses :func:`perfkit.metrics.state.merge_dicts_to_state` on :meth:`states`;
        prediction-only records (``labels_pending``) are skipped. Returns the merged
        state as a dict (``State.to_dict()``), or None when nothing matches.

        Note that with ``segment=ALL_SEGMENTS`` the states of every segment *and* the
        unsegmented rows are merged: if the tracker stores a whole-population record
        next to per-segment records for the same batch, pass ``segment=None`` to avoid
        counting rows twice.
        """
        from perfkit.metrics.state import merge_dicts_to_state

        _check_name(model, "model")
        with _bulk():
            states = [state for _, state in self.states(model, segment=segment, start=start,
                                                        end=end)]
            if not states:
                return None
            return merge_dicts_to_state(states).to_dict()
