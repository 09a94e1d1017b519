"""Store methods for versioned baselines."""

from __future__ import annotations

import numbers
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from perfkit.exceptions import (
    InputTypeError,
    StoreError,
    ValidationError,
)
from perfkit.store.records import (
    BaselineRecord,
    encode_json,
    normalize_metrics,
    to_utc,
)
from perfkit.store.schema import (
    baselines,
)

if TYPE_CHECKING:
    import pandas as pd


from perfkit.store import _lean
from perfkit.store._common import (
    BASELINE_COLUMNS,
    _check_name,
    _keep_none,
    _now,
    _seg,
    _unseg,
)


class _Baselines:
    """Methods of :class:`perfkit.store.Store` (see there)."""

    # ------------------------------------------------------------------ baselines
    def set_baseline(
        self,
        model: str,
        state: dict,
        metrics: dict,
        *,
        segment: str | None = None,
        model_version: str | None = None,
        source: str,
        sample_count: int,
        created_at: datetime | None = None,
    ) -> int:
        """Store a new baseline version for ``(model, segment)``.

        Returns
        -------
        int
            The new version number (1 for the first baseline of that model and segment).

        Examples
        --------
        >>> from perfkit.store import BatchRecord, Store
        >>> store = Store("sqlite://")
        >>> store.set_baseline("m", {"tp": 5}, {"recall": 0.9}, source="reference",
        ...                    sample_count=100)
        1
        >>> store.set_baseline("m", {"tp": 6}, {"recall": 0.8}, source="reference",
        ...                    sample_count=120)
        2
        >>> store.get_baseline("m", segment="EU").version  # falls back to the unsegmented one
        2
        """
        _check_name(model, "model")
        _check_name(segment, "segment", optional=True)
        _check_name(model_version, "model_version", optional=True)
        _check_name(source, "source")
        if not isinstance(state, dict):
            raise InputTypeError(f"state must be a dict, got {type(state).__name__}",
                                 parameter="state")
        if (
            isinstance(sample_count, bool)
            or not isinstance(sample_count, numbers.Integral)
            or sample_count < 0
        ):
            raise ValidationError(
                f"sample_count must be an int >= 0, got {sample_count!r}", parameter="sample_count"
            )
        row = {
            "model": model,
            "segment": _seg(segment),
            "model_version": model_version,
            "source": source,
            "sample_count": int(sample_count),
            "state": encode_json(state, "state"),
            "metrics": normalize_metrics(metrics),
            "created_at": _now() if created_at is None else to_utc(created_at, "created_at"),
        }
        latest = (
            sa.select(sa.func.max(baselines.c.version))
            .where(baselines.c.model == model, baselines.c.segment == row["segment"])
        )
        for attempt in range(20):
            try:
                with self._errors("set_baseline"), self._write() as conn:
                    version = (conn.execute(latest).scalar_one_or_none() or 0) + 1
                    conn.execute(baselines.insert(), {**row, "version": version})
                return version
            except StoreError as exc:  # concurrent writer took the version (PostgreSQL)
                if not isinstance(exc.__cause__, sa.exc.IntegrityError) or attempt == 19:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def get_baseline(
        self,
        model: str,
        *,
        segment: str | None = None,
        model_version: str | None = None,
    ) -> BaselineRecord | None:
        """Return the latest baseline of ``(model, segment)``, or None.

        When ``segment`` has no baseline of its own, the whole-population
        (unsegmented) baseline of the model is returned. With ``model_version`` only
        baselines of that model version are considered (for the fallback too).
        """
        candidates = [_seg(segment)] + ([""] if segment is not None else [])
        with self._errors("get_baseline"), self._read() as conn:
            for seg in candidates:
                query = (
                    sa.select(baselines)
                    .where(baselines.c.model == model, baselines.c.segment == seg)
                    .order_by(baselines.c.version.desc())
                    .limit(1)
                )
                if model_version is not None:
                    query = query.where(baselines.c.model_version == model_version)
                row = conn.execute(query).one_or_none()
                if row is not None:
                    return BaselineRecord(
                        model=row.model,
                        segment=_unseg(row.segment),
                        version=row.version,
                        state=row.state,
                        metrics=row.metrics,
                        source=row.source,
                        sample_count=row.sample_count,
                        model_version=row.model_version,
                        created_at=row.created_at,
                        id=row.id,
                    )
        return None

    def baseline_key(self, model: str, *, segment: str | None = None) -> tuple[int, int, str | None] | None:
        """``(id, version, segment)`` of the baseline :meth:`get_baseline` returns (None when
        there is none), without reading its state: a caller that keeps decoded baselines by
        their row id reads the whole row only for a new one."""
        candidates = [_seg(segment)] + ([""] if segment is not None else [])
        if self._lean:
            return _lean.baseline_key(self, model, candidates)
        with self._errors("get_baseline"), self._read() as conn:
            for seg in candidates:
                row = conn.execute(
                    sa.select(baselines.c.id, baselines.c.version, baselines.c.segment)
                    .where(baselines.c.model == model, baselines.c.segment == seg)
                    .order_by(baselines.c.version.desc())
                    .limit(1)
                ).one_or_none()
                if row is not None:
                    return int(row.id), int(row.version), _unseg(row.segment)
        return None

    def baselines(self, model: str | None = None) -> pd.DataFrame:
        """Return every baseline version (columns :data:`BASELINE_COLUMNS`), oldest first."""
        import pandas as pd

        query = sa.select(*(baselines.c[name] for name in BASELINE_COLUMNS)).order_by(
            baselines.c.model, baselines.c.segment, baselines.c.version
        )
        if model is not None:
            query = query.where(baselines.c.model == model)
        with self._errors("baselines"), self._read() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:
            row["segment"] = _unseg(row["segment"])
        frame = pd.DataFrame(rows, columns=list(BASELINE_COLUMNS))
        _keep_none(frame, ("segment", "model_version"),
                   {k: [r[k] for r in rows] for k in ("segment", "model_version")})
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        return frame
