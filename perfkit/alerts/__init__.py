"""Alerts: the alert value object and the channels that deliver it."""

from __future__ import annotations

from perfkit.alerts._cooldown import apply_cooldown, suppresses
from perfkit.alerts.channels import (
    CHANNELS,
    CallbackChannel,
    Channel,
    EmailChannel,
    FileChannel,
    LogChannel,
    WebhookChannel,
    channel_from_config,
    register_channel,
    run_retraining_hook,
    slack_payload,
)
from perfkit.alerts.types import (
    ALERT_TYPES,
    DELIVERY_STATUSES,
    SEVERITIES,
    Alert,
    DeliveryResult,
)

__all__ = [
    "ALERT_TYPES",
    "CHANNELS",
    "DELIVERY_STATUSES",
    "SEVERITIES",
    "Alert",
    "CallbackChannel",
    "Channel",
    "DeliveryResult",
    "EmailChannel",
    "FileChannel",
    "LogChannel",
    "WebhookChannel",
    "apply_cooldown",
    "channel_from_config",
    "register_channel",
    "run_retraining_hook",
    "slack_payload",
    "suppresses",
]
