"""Alert policy: cooldown and escalation, durable recording, delivery and retries.

Every alert is written to the store's alerts table before any delivery is attempted, with
one delivery row per channel. A channel that fails is recorded as ``failed`` and retried on
the next tracking call (or by :meth:`AlertManager.retry_pending`); a delivered channel is
never delivered again, so nothing is lost and nothing is sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from perfkit.alerts._cooldown import SEVERITY_RANK, suppresses
from perfkit.alerts.channels import Channel, run_retraining_hook
from perfkit.alerts.types import Alert, DeliveryResult
from perfkit.exceptions import StoreError

__all__ = ["AlertManager", "AlertOutcome", "SEVERITY_RANK"]

logger = logging.getLogger("perfkit")

@dataclass(frozen=True)
class AlertOutcome:
    """What happened to one alert: ``delivered``, ``failed`` (will be retried) or ``suppressed``."""

    alert: Alert
    status: str
    suppressed_by: str | None = None
    deliveries: tuple[DeliveryResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert": self.alert.to_dict(),
            "status": self.status,
            "suppressed_by": self.suppressed_by,
            "deliveries": [d.to_dict() for d in self.deliveries],
        }


class AlertManager:
    """Applies the cooldown, records alerts in the store and delivers them.

    Parameters
    ----------
    store : perfkit.store.Store
    channels : sequence of Channel
    cooldown_hours : float
        An alert of the same model, segment, metric and type within this many hours of a
        delivered one is recorded as ``suppressed`` (pointing at that alert) and not sent.
        An escalation to a higher severity is delivered even within the cooldown.
    retraining_hook : callable, str or list of str, optional
        Called (or run as a command) for every delivered retraining trigger.
    """

    def __init__(
        self,
        store: Any,
        channels: Sequence[Channel],
        *,
        cooldown_hours: float = 24.0,
        retraining_hook: Callable[[Alert], Any] | str | list[str] | None = None,
    ) -> None:
        self.store = store
        self.channels = {c.name: c for c in channels}
        self.cooldown = timedelta(hours=cooldown_hours)
        self.retraining_hook = retraining_hook

    def process(self, alerts: Sequence[Alert]) -> list[AlertOutcome]:
        """Record and deliver (or suppress) each alert; never raises for a channel failure."""
        outcomes = []
        for alert in alerts:
            last = self.store.last_alert(
                alert.model, alert.segment, alert.metric, alert.alert_type,
                since=alert.timestamp - self.cooldown,
            )
            if last is not None and last.get("alert_id") != alert.alert_id:
                if suppresses(_when(last, alert.timestamp), last.get("severity"), alert.timestamp,
                              alert.severity, self.cooldown):
                    self.store.add_alert(alert.to_dict(), status="suppressed", suppressed_by=last["alert_id"])
                    logger.info(
                        "alert suppressed by cooldown: %s (suppressed by %s)", alert.subject(), last["alert_id"]
                    )
                    outcomes.append(AlertOutcome(alert, "suppressed", suppressed_by=last["alert_id"]))
                    continue
            names = list(self.channels)
            self.store.add_alert(alert.to_dict(), status="pending" if names else "recorded", channels=names)
            results = tuple(self._deliver(alert, name) for name in names)
            if alert.alert_type == "retraining_trigger" and self.retraining_hook is not None:
                hook = run_retraining_hook(self.retraining_hook, alert)
                if not hook.ok:
                    logger.warning("retraining hook failed for %s: %s", alert.alert_id, hook.error)
                results = results + (hook,)
            status = "failed" if any(r.status == "failed" for r in results if r.channel in self.channels) else (
                "delivered" if names else "recorded"
            )
            outcomes.append(AlertOutcome(alert, status, deliveries=results))
        return outcomes

    def _deliver(self, alert: Alert, name: str) -> DeliveryResult:
        result = self.channels[name].deliver(alert)
        try:
            self.store.record_delivery(alert.alert_id, name, status=result.status, error=result.error)
        except StoreError as exc:  # already delivered by a concurrent retry: keep the first
            logger.warning("delivery of %s on %s not recorded: %s", alert.alert_id, name, exc)
        if result.status == "failed":
            logger.warning("alert %s: channel %s failed (%s); will retry", alert.alert_id, name, result.error)
        return result

    def retry_pending(self) -> list[DeliveryResult]:
        """Deliver every pending or failed delivery again (only on channels still configured)."""
        results = []
        for payload, channel in self.store.pending_deliveries():
            if channel not in self.channels:
                continue
            alert = Alert.from_dict(_alert_fields(payload))
            results.append(self._deliver(alert, channel))
        return results


def _when(payload: dict[str, Any], default: datetime) -> datetime:
    """The time of a stored alert payload (the store query already limits it to the cooldown)."""
    try:
        t = datetime.fromisoformat(str(payload["timestamp"]))
    except (KeyError, ValueError):
        return default
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _alert_fields(payload: dict[str, Any]) -> dict[str, Any]:
    import dataclasses

    names = {f.name for f in dataclasses.fields(Alert)}
    return {k: v for k, v in payload.items() if k in names}
