"""Alert policy: cooldown and escalation, and delivery through the store's outbox.

Alerts are written by the tracking transaction (:meth:`perfkit.store.Store.write_tracked`)
together with their batch: the cooldown is decided inside that transaction (the methods
:meth:`AlertManager.window_start` / :meth:`AlertManager.suppressed_by`), and every alert that
is not suppressed gets one *pending* delivery row per channel. Delivery happens after the
commit, by :meth:`AlertManager.deliver`:

* each delivery is **claimed** with a lease before it is sent (an atomic conditional UPDATE;
  ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two processes or trackers never
  send the same delivery;
* channels run in parallel, each send in its own thread, and the caller waits at most
  ``deadline`` seconds in total; a send still running then finishes in the background and
  records itself (an in-memory ``sqlite://`` store cannot be reached from that thread: the
  delivery is then retried after its lease), and whatever was not attempted stays pending
  for the next call,
  ``perfkit alerts retry`` or ``tracker.deliver_pending()``;
* the outcome is recorded after sending, releasing the lease. Only a crash between sending
  and recording can repeat a delivery, once its lease has expired; the repeat is logged and
  counted (``orphaned``), and carries the same idempotency key (webhook ``Idempotency-Key``
  header and email ``Message-ID`` derived from the alert id) so receivers can drop it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from perfkit.alerts._cooldown import SEVERITY_RANK, suppresses
from perfkit.alerts.channels import Channel, run_retraining_hook
from perfkit.alerts.types import Alert, DeliveryResult
from perfkit.exceptions import DeliveryError, PerfkitError

__all__ = ["HOOK_CHANNEL", "SEVERITY_RANK", "AlertManager", "AlertOutcome"]

logger = logging.getLogger("perfkit")

HOOK_CHANNEL = "retraining_hook"
"""Outbox channel name of the retraining hook (retraining triggers only)."""


@dataclass(frozen=True)
class AlertOutcome:
    """What happened to one alert: ``delivered``, ``pending`` (left for a later call),
    ``failed`` (will be retried), ``recorded`` (no channel) or ``suppressed``."""

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


class _HookChannel(Channel):
    """The retraining hook as an outbox channel (so it runs once per trigger, with a lease)."""

    name = HOOK_CHANNEL
    timeout = 60.0

    def __init__(self, manager: AlertManager) -> None:
        self._manager = manager

    def send(self, alert: Alert) -> None:
        hook = self._manager.retraining_hook
        if hook is None:
            return
        result = run_retraining_hook(hook, alert, timeout=self.timeout)
        if not result.ok:
            raise DeliveryError(result.error or "retraining hook failed")


class _Send:
    """One claimed delivery being sent in a worker thread."""

    def __init__(self, manager: AlertManager, claim: Any, channel: Channel, done: queue.Queue) -> None:
        self.claim = claim
        self.lock = threading.Lock()
        self.abandoned = False
        self._manager, self._channel, self._done = manager, channel, done
        self.thread = threading.Thread(target=self._run, name=f"perfkit-send-{claim.channel}", daemon=True)

    def _run(self) -> None:
        alert = Alert.from_dict(_alert_fields(self.claim.payload))
        try:
            result = self._channel.deliver(alert)
        except Exception as exc:  # noqa: BLE001 - a channel must never take the tracker down
            result = DeliveryResult(self._channel.name, "failed", f"{type(exc).__name__}: {exc}")
        with self.lock:
            if not self.abandoned:
                self._done.put((self, result))
                return
        self._manager._record(self.claim, result)  # the caller left at its deadline


class AlertManager:
    """Applies the cooldown (inside the tracking transaction) and delivers from the outbox.

    Parameters
    ----------
    store : perfkit.store.Store
    channels : sequence of Channel
    cooldown_hours : float
        An alert of the same model, segment, metric and type within this many hours of a
        delivered (not suppressed) one is recorded as ``suppressed`` (pointing at that alert)
        and not sent. An escalation to a higher severity is sent even within the cooldown.
    retraining_hook : callable, str or list of str, optional
        Called (or run as a command) once for every retraining trigger, as the outbox
        channel ``"retraining_hook"``.
    lease_seconds : float, optional
        How long a claimed delivery is reserved for its sender. Default: twice the longest
        channel timeout, at least 60 s. A sender that crashes after sending and before
        recording blocks the delivery this long; then it is sent again (same idempotency key).
    """

    def __init__(
        self,
        store: Any,
        channels: Sequence[Channel],
        *,
        cooldown_hours: float = 24.0,
        retraining_hook: Callable[[Alert], Any] | str | list[str] | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        self.store = store
        self.channels = {c.name: c for c in channels}
        self.cooldown = timedelta(hours=cooldown_hours)
        self.retraining_hook = retraining_hook
        self._hook = _HookChannel(self)
        timeouts = [float(getattr(c, "timeout", 30.0) or 30.0) for c in [*channels, self._hook]]
        self.lease_seconds = float(lease_seconds) if lease_seconds is not None else max(60.0, 2 * max(timeouts))
        self.owner = uuid.uuid4().hex

    # ------------------------------------------------------------------ cooldown (in the transaction)
    def window_start(self, alert: dict) -> datetime:
        """Start of the cooldown window of ``alert`` (a stored alert dict)."""
        ts = alert["timestamp"]
        if isinstance(ts, str):
            ts = datetime.fromisoformat(ts)
        return ts - self.cooldown

    def suppressed_by(self, alert: dict, last: dict | None) -> str | None:
        """The alert id that suppresses ``alert`` (None: send it). ``last`` is the latest
        non-suppressed alert of the same key inside the cooldown window."""
        if last is None or last.get("alert_id") == alert.get("alert_id"):
            return None
        when = _when(alert, datetime.now(UTC))
        held = suppresses(_when(last, when), last.get("severity"), when, alert.get("severity"), self.cooldown)
        return last["alert_id"] if held else None

    def channels_for(self, alert: Alert | dict) -> list[str]:
        """Outbox channels of an alert: every channel, plus the hook for retraining triggers."""
        kind = alert.alert_type if isinstance(alert, Alert) else alert.get("alert_type")
        names = list(self.channels)
        if kind == "retraining_trigger" and self.retraining_hook is not None:
            names.append(HOOK_CHANNEL)
        return names

    def _channel(self, name: str) -> Channel | None:
        return self._hook if name == HOOK_CHANNEL else self.channels.get(name)

    # ------------------------------------------------------------------ delivery
    def _record(self, claim: Any, result: DeliveryResult) -> None:
        try:
            self.store.record_claimed(claim, status=result.status, error=result.error)
        except PerfkitError as exc:
            logger.warning("delivery of %s on %s not recorded: %s", claim.alert_id, claim.channel, exc)
        if result.status == "failed":
            logger.warning("alert %s: channel %s failed (%s); will retry", claim.alert_id, claim.channel, result.error)

    def deliver(
        self,
        alert_ids: Sequence[str] | None = None,
        *,
        deadline: float | None = None,
        backlog: bool = True,
    ) -> list[DeliveryResult]:
        """Deliver pending deliveries: those of ``alert_ids`` first, then (``backlog``) the rest.

        Waits at most ``deadline`` seconds in total (None: until every claimed delivery has
        been attempted; each channel still bounds its own exchange by its timeout). Returns
        the results recorded during the call; never raises for a channel failure.
        """
        names = list(self.channels) + ([HOOK_CHANNEL] if self.retraining_hook is not None else [])
        if alert_ids is None and backlog:
            try:  # one cheap read instead of a claim transaction per channel when nothing waits
                if not self.store.has_open_deliveries(names):
                    return []
            except PerfkitError as exc:
                logger.warning("checking pending deliveries failed: %s", exc)
                return []
        end = None if deadline is None else time.monotonic() + max(0.0, float(deadline))
        done: queue.Queue = queue.Queue()
        inflight: dict[str, _Send] = {}
        exhausted: set[str] = set()
        phases = ([list(alert_ids)] if alert_ids is not None else []) + ([None] if backlog else [])
        phase_of = dict.fromkeys(names, 0)
        tried: dict[str, list[str]] = {name: [] for name in names}  # one attempt per delivery per call
        results: list[DeliveryResult] = []

        def claim_next(name: str) -> Any:
            while phase_of[name] < len(phases):
                try:
                    got = self.store.claim_deliveries([name], owner=self.owner, lease_seconds=self.lease_seconds,
                                                      alert_ids=phases[phase_of[name]], limit=1,
                                                      exclude=tried[name])
                except PerfkitError as exc:
                    logger.warning("claiming deliveries on %s failed: %s", name, exc)
                    return None
                if got:
                    tried[name].append(got[0].alert_id)
                    return got[0]
                phase_of[name] += 1
            return None

        while True:
            if end is not None and time.monotonic() >= end:
                break
            for name in names:
                if name in inflight or name in exhausted:
                    continue
                claim = claim_next(name)
                if claim is None:
                    exhausted.add(name)
                    continue
                send = _Send(self, claim, self._channel(name), done)
                inflight[name] = send
                send.thread.start()
            if not inflight:
                break
            timeout = None if end is None else max(0.0, end - time.monotonic())
            try:
                send, result = done.get(timeout=timeout)
            except queue.Empty:
                break
            del inflight[send.claim.channel]
            self._record(send.claim, result)
            results.append(_with_alert(result, send.claim.alert_id))
        for send in inflight.values():
            with send.lock:
                send.abandoned = True
        while True:  # sends that finished while we were leaving
            try:
                send, result = done.get_nowait()
            except queue.Empty:
                break
            self._record(send.claim, result)
            results.append(_with_alert(result, send.claim.alert_id))
        if inflight:
            logger.warning(
                "alert delivery deadline (%.3g s) reached; %d send(s) still running will record themselves, "
                "the rest stays pending", deadline, len(inflight),
            )
        return results

    def retry_pending(self, *, deadline: float | None = None) -> list[DeliveryResult]:
        """Deliver every pending or failed delivery (only on channels still configured)."""
        return self.deliver(None, deadline=deadline)


def _with_alert(result: DeliveryResult, alert_id: str) -> DeliveryResult:
    return DeliveryResult(result.channel, result.status, result.error, result.attempted_at, alert_id=alert_id)


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
