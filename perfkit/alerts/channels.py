"""Alert channels: where alerts go (log, JSON-lines file, email, webhook, callback).

Every channel has one shape: a ``name`` and a :meth:`Channel.send` that either delivers the
alert or raises :class:`~perfkit.exceptions.DeliveryError` (with the underlying cause
chained, except a webhook's connection errors, whose text could quote the URL's path). :meth:`Channel.deliver` wraps ``send`` and never raises: it returns a
:class:`~perfkit.alerts.types.DeliveryResult`, so one broken channel cannot stop the others.

Channels are built from configuration through :func:`channel_from_config`, which looks the
kind up in the :data:`CHANNELS` registry; :func:`register_channel` adds new kinds.

Secrets stay secret: the SMTP password and the webhook URL (which often embeds a token) are
never written to logs, ``repr`` or error messages; only the webhook's scheme and host are
(a malformed webhook URL is refused without being shown).

Idempotency: the webhook sends ``Idempotency-Key: <alert id>`` and the email's ``Message-ID``
is ``<alert id@sender domain>``, so a delivery repeated after a crash can be dropped by the
receiver. The webhook and SMTP ``timeout`` bounds the whole exchange, not each socket read.
"""

from __future__ import annotations

import abc
import http.client
import json
import logging
import os
import shlex
import smtplib
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate
from http.client import HTTPException
from pathlib import Path
from typing import Any

from perfkit.alerts.types import Alert, DeliveryResult, _utcnow
from perfkit.exceptions import ConfigError, DeliveryError

try:  # POSIX; elsewhere appends are not locked and a torn line is not repaired
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CHANNELS",
    "CallbackChannel",
    "Channel",
    "EmailChannel",
    "FileChannel",
    "LogChannel",
    "WebhookChannel",
    "channel_from_config",
    "register_channel",
    "run_retraining_hook",
    "slack_payload",
]

logger = logging.getLogger("perfkit")

_ERROR_TAIL = 500  # characters of stderr / response text kept in error messages


def _check_timeout(owner: str, timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ConfigError(f"{owner}: timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


class _Watchdog:
    """Bound a whole network exchange: after ``timeout`` s, shut the socket(s) down.

    A socket timeout bounds each read only; a server trickling one byte at a time could
    keep an exchange busy without limit. The watchdog closes the connection instead, so
    the blocked call fails and the exchange ends within ``timeout`` (plus scheduling).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.fired = False
        self._sockets: list[Callable[[], Any]] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True

    def watch(self, get_socket: Callable[[], Any]) -> None:
        with self._lock:
            self._sockets.append(get_socket)
            if self.fired:
                _shutdown(get_socket())

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for get in self._sockets:
                _shutdown(get())

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _shutdown(sock: Any) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Channel(abc.ABC):
    """Base class of every alert channel.

    Subclasses set :attr:`name` and implement :meth:`send`, converting every expected
    failure into :class:`~perfkit.exceptions.DeliveryError`.
    """

    #: Short name used in logs and :class:`DeliveryResult`.
    name: str = "channel"

    @abc.abstractmethod
    def send(self, alert: Alert) -> None:
        """Deliver ``alert``.

        Raises
        ------
        DeliveryError
            If the alert could not be delivered (the cause is chained).
        """

    def deliver(self, alert: Alert) -> DeliveryResult:
        """Send ``alert`` and report the outcome instead of raising.

        Returns
        -------
        DeliveryResult
            ``status="delivered"``, or ``status="failed"`` with the reason in ``error``.
        """
        attempted_at = _utcnow()
        try:
            self.send(alert)
        except DeliveryError as exc:
            logger.warning(
                "channel %s failed to deliver alert %s: %s", self.name, alert.alert_id, exc
            )
            return DeliveryResult(self.name, "failed", str(exc), attempted_at)
        logger.debug("channel %s delivered alert %s", self.name, alert.alert_id)
        return DeliveryResult(self.name, "delivered", None, attempted_at)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# ---------------------------------------------------------------------------- log
_DEFAULT_LEVELS: Mapping[str, int] = {
    "minor": logging.WARNING,
    "moderate": logging.WARNING,
    "critical": logging.CRITICAL,
}


class LogChannel(Channel):
    """Write alerts to a :mod:`logging` logger.

    Parameters
    ----------
    logger_name : str
        Logger to write to (default ``"perfkit"``).
    levels : Mapping[str, int] or None
        Log level per severity; defaults to minor/moderate -> WARNING, critical -> CRITICAL.

    Notes
    -----
    The record's message is the alert subject; the full alert is attached as the
    ``perfkit_alert`` attribute (``alert.to_dict()``) for structured handlers.

    Examples
    --------
    >>> LogChannel().levels["critical"] == logging.CRITICAL
    True
    """

    name = "log"

    def __init__(self, logger_name: str = "perfkit", levels: Mapping[str, int] | None = None):
        if not isinstance(logger_name, str) or not logger_name:
            raise ConfigError(
                f"LogChannel: logger_name must be a non-empty str, got {logger_name!r}"
            )
        merged = dict(_DEFAULT_LEVELS)
        if levels is not None:
            unknown = sorted(set(levels) - set(_DEFAULT_LEVELS))
            if unknown:
                raise ConfigError(
                    f"LogChannel: levels has unknown severities {unknown}; "
                    f"valid ones are {sorted(_DEFAULT_LEVELS)}"
                )
            merged.update(levels)
        self.logger_name = logger_name
        self.levels: Mapping[str, int] = merged
        self._logger = logging.getLogger(logger_name)

    def send(self, alert: Alert) -> None:
        """Log the alert subject at the level of its severity."""
        self._logger.log(
            self.levels[alert.severity],
            "%s",
            alert.subject(),
            extra={"perfkit_alert": alert.to_dict()},
        )

    def __repr__(self) -> str:
        return f"LogChannel(logger_name={self.logger_name!r})"


# ---------------------------------------------------------------------------- file
def _drop_torn_tail(fd: int, path: Path) -> int:
    """Cut a last line without its newline (a writer killed mid-line); return the file's end.

    Called with the file's exclusive lock held, so the fragment cannot belong to a writer
    that is still running.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    start = size
    while start > 0:
        chunk_start = max(0, start - 65536)
        chunk = os.pread(fd, start - chunk_start, chunk_start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            start = chunk_start + newline + 1
            break
        start = chunk_start
    os.ftruncate(fd, start)
    logger.warning(
        "file channel: removed a torn last line of %d bytes from %s (a writer killed while "
        "appending; its alert is sent again in full)", size - start, path,
    )
    return start


class FileChannel(Channel):
    """Append one JSON line per alert (``alert.to_dict()``) to a file.

    Each line is written with a single ``os.write`` on a descriptor opened with
    ``O_APPEND``, under an exclusive ``flock``, and then ``fsync``-ed, so several processes
    appending to the same file on a local POSIX filesystem never interleave their lines.
    A process killed while writing (Linux cuts a ``write`` short when ``SIGKILL`` arrives
    between two pages) leaves a torn last line; the next append, holding the lock, removes
    that fragment (logged as a warning) before writing, so every line of the file is one
    whole alert. The killed delivery was never recorded, so the outbox sends that alert
    again in full. Parent directories are created.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON-lines file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp()) / "alerts" / "log.jsonl"
    >>> channel = FileChannel(tmp)
    >>> channel.deliver(Alert(model="m", alert_type="low_performance", severity="minor")).ok
    True
    >>> len(tmp.read_text().splitlines())
    1
    """

    name = "file"

    def __init__(self, path: str | os.PathLike[str]):
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise ConfigError(f"FileChannel: path must be a non-empty path, got {path!r}")
        self.path = Path(path)

    def send(self, alert: Alert) -> None:
        """Append the alert as one JSON line."""
        line = json.dumps(alert.to_dict(), ensure_ascii=False, sort_keys=True, allow_nan=False)
        data = (line + "\n").encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(
                self.path,
                os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                0o644,
            )
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                end = _drop_torn_tail(fd, self.path)
                written = os.write(fd, data)
                if written != len(data):
                    os.ftruncate(fd, end)
                    raise DeliveryError(
                        f"file channel wrote only {written} of {len(data)} bytes of alert "
                        f"{alert.alert_id} to {self.path} (disk full?)"
                    )
                os.fsync(fd)
            finally:
                os.close(fd)  # also releases the lock
        except OSError as exc:
            raise DeliveryError(
                f"file channel could not append alert {alert.alert_id} to {self.path}: {exc}"
            ) from exc

    def __repr__(self) -> str:
        return f"FileChannel(path={str(self.path)!r})"


# ---------------------------------------------------------------------------- email
_SECURITY = ("none", "starttls", "ssl")


class EmailChannel(Channel):
    """Send alerts by email over SMTP (``multipart/alternative``: plain text and HTML).

    Parameters
    ----------
    host : str
        SMTP server.
    port : int
        SMTP port (25 by default; typically 587 for STARTTLS and 465 for SSL).
    sender : str
        The ``From`` address.
    recipients : str or Sequence[str]
        One or more ``To`` addresses.
    security : {"none", "starttls", "ssl"}
        Transport security: plain SMTP, upgrade with STARTTLS, or implicit TLS.
    username, password : str or None
        Credentials for SMTP AUTH; give both or neither. The password never appears in
        logs, ``repr`` or error messages.
    password_env : str or None
        Name of an environment variable to read the password from at send time (keeps the
        secret out of configuration files). Ignored when ``password`` is given.
    timeout : float
        Bound in seconds on the whole SMTP exchange (connect, TLS, login, sending): a
        server that accepts and never answers, or answers one byte at a time, cannot
        hold a delivery longer.
    ssl_context : ssl.SSLContext or None
        Context for ``"starttls"``/``"ssl"``; ``ssl.create_default_context()`` by default
        (certificate and host name verification on).

    Examples
    --------
    >>> ch = EmailChannel("smtp.example.org", 587, sender="perfkit@example.org",
    ...                   recipients=["ml@example.org"], security="starttls",
    ...                   username="bot", password="hunter2")
    >>> "hunter2" in repr(ch)
    False
    """

    name = "email"

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        sender: str,
        recipients: str | Sequence[str],
        security: str = "none",
        username: str | None = None,
        password: str | None = None,
        password_env: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ):
        if not isinstance(host, str) or not host:
            raise ConfigError(f"EmailChannel: host must be a non-empty str, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"EmailChannel: port must be an int in 1..65535, got {port!r}")
        if not isinstance(sender, str) or "@" not in sender:
            raise ConfigError(f"EmailChannel: sender must be an email address, got {sender!r}")
        if isinstance(recipients, str):
            recipients = [recipients]
        recipients = list(recipients)
        if not recipients or not all(isinstance(r, str) and "@" in r for r in recipients):
            raise ConfigError(
                f"EmailChannel: recipients must be one or more email addresses, got {recipients!r}"
            )
        if security not in _SECURITY:
            raise ConfigError(
                f"EmailChannel: security must be one of {_SECURITY}, got {security!r}"
            )
        if (password is not None or password_env is not None) and username is None:
            raise ConfigError("EmailChannel: username is required when a password is given")
        if username is not None and password is None and password_env is None:
            raise ConfigError(
                "EmailChannel: password (or password_env) is required when username is given"
            )
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise ConfigError("EmailChannel: ssl_context must be an ssl.SSLContext")
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients: tuple[str, ...] = tuple(recipients)
        self.security = security
        self.username = username
        self.password_env = password_env
        self.timeout = _check_timeout("EmailChannel", timeout)
        self.ssl_context = ssl_context
        self.__password = password  # name-mangled; never shown by __repr__

    def __repr__(self) -> str:
        secret = "'***'" if (self.__password or self.password_env) else "None"
        return (
            f"EmailChannel(host={self.host!r}, port={self.port!r}, sender={self.sender!r}, "
            f"recipients={list(self.recipients)!r}, security={self.security!r}, "
            f"username={self.username!r}, password={secret}, timeout={self.timeout!r})"
        )

    def _password(self) -> str | None:
        if self.__password is not None:
            return self.__password
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise DeliveryError(
                    f"email channel: environment variable {self.password_env} "
                    "(password_env) is not set"
                )
            return value
        return None

    def _scrub(self, text: str, password: str | None) -> str:
        return text.replace(password, "***") if password else text

    def build_message(self, alert: Alert) -> EmailMessage:
        """Return the ``multipart/alternative`` message that :meth:`send` would send."""
        msg = EmailMessage()
        msg["Subject"] = alert.subject()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        # the same alert always has the same Message-ID: a repeat (after a crash between sending
        # and recording) can be dropped by the receiver
        msg["Message-ID"] = f"<{alert.alert_id}@{self.sender.rpartition('@')[2] or 'perfkit'}>"
        msg["X-Perfkit-Alert-Id"] = alert.alert_id
        msg.set_content(alert.text())
        msg.add_alternative(alert.html(), subtype="html")
        return msg

    def send(self, alert: Alert) -> None:
        """Send the alert email; any SMTP, TLS or socket failure raises DeliveryError."""
        password = self._password()
        msg = self.build_message(alert)
        watchdog = _Watchdog(self.timeout)
        try:
            context = self.ssl_context
            if self.security != "none" and context is None:
                context = ssl.create_default_context()
            if self.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(timeout=self.timeout)
            smtp._host = self.host  # TLS server name; the constructor sets it only when it connects
            with watchdog:
                watchdog.watch(lambda: getattr(smtp, "sock", None))
                try:
                    smtp.connect(self.host, self.port)
                    if self.security == "starttls":
                        smtp.starttls(context=context)
                        smtp.ehlo()
                    if self.username is not None and password is not None:
                        smtp.login(self.username, password)
                    refused = smtp.send_message(msg)
                    smtp.quit()
                finally:
                    smtp.close()
        except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError and timeouts are OSError
            detail = self._scrub(f"{type(exc).__name__}: {exc}", password)
            if watchdog.fired:
                detail = f"timed out: no complete answer within the {self.timeout:g} s timeout ({detail})"
            raise DeliveryError(
                f"email channel could not deliver alert {alert.alert_id} via "
                f"{self.host}:{self.port}: {detail}"
            ) from exc
        if refused:
            logger.warning(
                "email channel: alert %s was refused for %d recipient(s): %s",
                alert.alert_id,
                len(refused),
                ", ".join(sorted(refused)),
            )


# ---------------------------------------------------------------------------- webhook
_FORMATS = ("json", "slack")


def _slack_escape(text: str) -> str:
    """Escape the three characters Slack treats as control characters in text fields."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(alert: Alert) -> dict[str, Any]:
    """Return a Slack incoming-webhook payload (``text`` plus Block Kit ``blocks``).

    Every text field is escaped for Slack (``&``, ``<``, ``>``) and clipped to Slack's
    length limits.

    Examples
    --------
    >>> p = slack_payload(Alert(model="<m>", alert_type="low_performance", severity="minor"))
    >>> p["text"]
    "[perfkit MINOR] model '&lt;m&gt;': performance below the acceptable level"
    >>> [block["type"] for block in p["blocks"]]
    ['section', 'section', 'context']
    """
    facts = dict(alert._facts())
    model = facts["Model"]
    if alert.model_version is not None:
        model += f" ({alert.model_version})"
    pairs = [
        ("Model", model),
        ("Segment", facts["Segment"]),
        ("Metric", facts["Metric"]),
        ("Severity", alert.severity),
        ("Type", alert.alert_type),
        ("Baseline", facts["Baseline"]),
        ("Current", facts["Current"]),
        ("Relative change", facts["Relative change"]),
        ("p-value (adjusted)", f"{facts['p-value']} ({facts['Adjusted p-value']})"),
        ("Batch", facts["Batch"]),
    ]
    summary = alert.message.strip() or alert.summary()
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": _clip(
                    f"*{_slack_escape(alert.subject())}*\n{_slack_escape(summary)}", 3000
                ),
            },
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _clip(f"*{label}*\n{_slack_escape(value)}", 2000)}
                for label, value in pairs
            ],
        },
    ]
    meta = alert._metadata_items()
    if meta:
        text = "\n".join(f"{_slack_escape(k)}: {_slack_escape(v)}" for k, v in meta)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, 3000)}})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": _slack_escape(
                        f"alert {alert.alert_id} at {alert.timestamp.isoformat()}"
                    ),
                }
            ],
        }
    )
    return {"text": _clip(_slack_escape(alert.subject()), 3000), "blocks": blocks}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: urllib would silently turn the POST into a body-less GET."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class _WatchedHandlers:
    """urllib handlers whose connections register their sockets with a watchdog."""

    def __init__(self) -> None:
        self.connections: list[http.client.HTTPConnection] = []

    def handlers(self) -> list[urllib.request.BaseHandler]:
        owner = self

        class _HTTP(urllib.request.HTTPHandler):
            def http_open(self, req):
                return self.do_open(owner._make(http.client.HTTPConnection), req)

        class _HTTPS(urllib.request.HTTPSHandler):
            def https_open(self, req):
                return self.do_open(owner._make(http.client.HTTPSConnection), req,
                                    context=self._context)

        return [_HTTP(), _HTTPS()]

    def _make(self, cls: type) -> Callable[..., http.client.HTTPConnection]:
        def factory(*args: Any, **kwargs: Any) -> http.client.HTTPConnection:
            conn = cls(*args, **kwargs)
            self.connections.append(conn)
            return conn

        return factory


def _has_unsafe_chars(url: str) -> bool:
    return any(ch.isspace() or not ch.isprintable() for ch in url)


class WebhookChannel(Channel):
    """POST alerts as JSON to an HTTP(S) endpoint.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` endpoint. It may embed a secret token, so only its
        scheme and host are ever logged or shown in errors.
    format : {"json", "slack"}
        ``"json"`` posts ``alert.to_dict()``; ``"slack"`` posts a Slack incoming-webhook
        payload (see :func:`slack_payload`).
    timeout : float
        Bound in seconds on the whole exchange (connect, send, every read of the answer).
    headers : Mapping[str, str] or None
        Extra request headers (e.g. ``Authorization``); their values are never logged.

    Notes
    -----
    Any answer outside 2xx (redirects included: they are not followed) and every
    connection error or timeout raises :class:`~perfkit.exceptions.DeliveryError`, whose
    message names only the scheme and host (never the path, query or credentials of the
    URL). Every POST carries the header ``Idempotency-Key: <alert id>``: a delivery repeated
    after a crash between sending and recording has the same key, so receivers can drop it.
    Proxies from the usual ``*_proxy`` environment variables are honoured.

    Examples
    --------
    >>> ch = WebhookChannel("https://hooks.example.org/T000/secret-token", format="slack")
    >>> ch.safe_url
    'https://hooks.example.org'
    >>> "secret-token" in repr(ch)
    False
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        format: str = "json",
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
    ):
        if not isinstance(url, str):
            raise ConfigError(f"WebhookChannel: url must be a str, got {type(url).__name__}")
        try:
            parts = urllib.parse.urlsplit(url)
            _ = parts.port
        except ValueError:
            parts = None
        if parts is None or _has_unsafe_chars(url):
            raise ConfigError(
                "WebhookChannel: url is not a valid URL (bad port, brackets, spaces or control "
                "characters); it is not shown because it may hold a token"
            )
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                "WebhookChannel: url must be an absolute http:// or https:// URL "
                f"(got scheme {parts.scheme!r})"
            )
        if format not in _FORMATS:
            raise ConfigError(f"WebhookChannel: format must be one of {_FORMATS}, got {format!r}")
        if headers is not None and not (
            isinstance(headers, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        ):
            raise ConfigError("WebhookChannel: headers must be a mapping of str to str")
        self.url = url
        self.format = format
        self.timeout = _check_timeout("WebhookChannel", timeout)
        self.headers: dict[str, str] = dict(headers or {})
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        self.safe_url = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
        self._secrets = [x for x in (url, parts.path, parts.query, parts.fragment, parts.password,
                                     parts.username) if x and len(x) > 1]

    def __repr__(self) -> str:
        return (
            f"WebhookChannel(url={self.safe_url + '/…'!r}, format={self.format!r}, "
            f"timeout={self.timeout!r}, headers={sorted(self.headers)!r})"
        )

    def _scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "…")
        return text

    def payload(self, alert: Alert) -> dict[str, Any]:
        """Return the JSON document that :meth:`send` posts."""
        return slack_payload(alert) if self.format == "slack" else alert.to_dict()

    def send(self, alert: Alert) -> None:
        """POST the alert; a non-2xx answer, connection error or timeout raises."""
        body = json.dumps(self.payload(alert), allow_nan=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "perfkit-alerts",
            "Idempotency-Key": alert.alert_id,
            **self.headers,
        }
        where = f"webhook {self.safe_url}"
        watched = _WatchedHandlers()
        opener = urllib.request.build_opener(_NoRedirect, *watched.handlers())
        watchdog = _Watchdog(self.timeout)
        try:
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            with watchdog:
                watchdog.watch(lambda: next((c.sock for c in watched.connections if c.sock), None))
                with opener.open(request, timeout=self.timeout) as response:
                    status = response.status
                    response.read(65536)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise DeliveryError(
                f"{where} answered HTTP {exc.code} for alert {alert.alert_id}"
            ) from exc  # its text is the status line only
        except (urllib.error.URLError, OSError, HTTPException, ValueError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            detail = self._scrub(f"{type(reason).__name__}: {reason}")
            if watchdog.fired:
                detail = f"timed out: no complete answer within the {self.timeout:g} s timeout"
            verb = "could not be reached" if isinstance(exc, urllib.error.URLError) else "failed"
            # not chained: the cause's text (e.g. http.client.InvalidURL) may quote the URL's path
            raise DeliveryError(f"{where} {verb} for alert {alert.alert_id}: {detail}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"{where} answered HTTP {status} for alert {alert.alert_id}")


# ---------------------------------------------------------------------------- callback
class CallbackChannel(Channel):
    """Hand alerts to a Python callable, ``func(alert)``.

    Parameters
    ----------
    func : Callable[[Alert], object]
        Called once per alert; its return value is ignored.
    name : str or None
        Channel name; defaults to ``"callback:<function name>"``.

    Examples
    --------
    >>> seen = []
    >>> ch = CallbackChannel(seen.append, name="memory")
    >>> ch.deliver(Alert(model="m", alert_type="low_performance", severity="minor")).ok
    True
    >>> len(seen)
    1
    """

    def __init__(self, func: Callable[[Alert], object], name: str | None = None):
        if not callable(func):
            raise ConfigError(f"CallbackChannel: func must be callable, got {type(func).__name__}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigError(f"CallbackChannel: name must be a non-empty str, got {name!r}")
        self.func = func
        self.name = name or f"callback:{getattr(func, '__name__', type(func).__name__)}"

    def send(self, alert: Alert) -> None:
        """Call ``func(alert)``; whatever it raises becomes DeliveryError."""
        try:
            self.func(alert)
        # The callback is arbitrary user code, so no narrower set of exceptions can be named;
        # the failure is reported (and chained) as a DeliveryError instead of being swallowed.
        except Exception as exc:
            raise DeliveryError(
                f"callback {self.name} raised {type(exc).__name__} for alert "
                f"{alert.alert_id}: {exc}"
            ) from exc

    def __repr__(self) -> str:
        return f"CallbackChannel(name={self.name!r})"


# ---------------------------------------------------------------------------- registry
#: Channel kinds accepted by :func:`channel_from_config`.
CHANNELS: dict[str, Callable[..., Channel]] = {}


def register_channel(kind: str, factory: Callable[..., Channel]) -> None:
    """Register ``factory`` (usually a :class:`Channel` subclass) under ``kind``.

    Raises
    ------
    ConfigError
        If ``kind`` is already registered or ``factory`` is not callable.
    """
    if not isinstance(kind, str) or not kind:
        raise ConfigError(f"register_channel: kind must be a non-empty str, got {kind!r}")
    if kind in CHANNELS:
        raise ConfigError(f"register_channel: channel kind {kind!r} is already registered")
    if not callable(factory):
        raise ConfigError("register_channel: factory must be callable")
    CHANNELS[kind] = factory


# Built-in channels, registered in one place.
register_channel("log", LogChannel)
register_channel("file", FileChannel)
register_channel("email", EmailChannel)
register_channel("webhook", WebhookChannel)
register_channel("callback", CallbackChannel)


def channel_from_config(kind: str, **options: Any) -> Channel:
    """Build a channel of the registered ``kind`` from keyword options.

    Parameters
    ----------
    kind : str
        One of the keys of :data:`CHANNELS` (``"log"``, ``"file"``, ``"email"``,
        ``"webhook"``, ``"callback"``).
    **options
        Passed to the channel's constructor.

    Raises
    ------
    ConfigError
        If the kind is unknown (the message lists the valid kinds) or the options do not
        fit the channel.

    Examples
    --------
    >>> channel_from_config("webhook", url="https://example.org/hook").name
    'webhook'
    >>> channel_from_config("pager")
    Traceback (most recent call last):
    ...
    perfkit.exceptions.ConfigError: unknown channel kind 'pager'; valid kinds: callback, email, file, log, webhook
    """
    factory = CHANNELS.get(kind)
    if factory is None:
        raise ConfigError(
            f"unknown channel kind {kind!r}; valid kinds: {', '.join(sorted(CHANNELS))}"
        )
    try:
        return factory(**options)
    except TypeError as exc:  # unexpected or missing keyword options
        raise ConfigError(f"invalid options for channel kind {kind!r}: {exc}") from exc


# ---------------------------------------------------------------------------- hooks
def run_retraining_hook(
    hook: Callable[[Alert], object] | str | Sequence[str],
    alert: Alert,
    *,
    timeout: float = 60.0,
) -> DeliveryResult:
    """Run a retraining hook for ``alert`` and report the outcome; never raises.

    Parameters
    ----------
    hook : callable, str or sequence of str
        A callable is called as ``hook(alert)``. A string (split with :func:`shlex.split`)
        or a list of arguments is run as a command without a shell: the alert's JSON
        (``alert.to_dict()``) is written to its standard input and ``PERFKIT_ALERT_ID`` is
        set in its environment. A non-zero exit status counts as a failure.
    alert : Alert
        The alert that triggered retraining.
    timeout : float
        Seconds the command may run before it is killed (default 60).

    Returns
    -------
    DeliveryResult
        ``channel`` is ``"retraining_hook"``; ``status`` is ``"delivered"`` on success,
        else ``"failed"`` with the reason (exit status, stderr tail, exception) in ``error``.

    Examples
    --------
    >>> a = Alert(model="m", alert_type="retraining_trigger", severity="critical")
    >>> run_retraining_hook(lambda alert: None, a).status
    'delivered'
    >>> run_retraining_hook(["/nonexistent/retrain"], a).status
    'failed'
    """
    attempted_at = _utcnow()
    name = "retraining_hook"

    def failed(reason: str) -> DeliveryResult:
        logger.warning("retraining hook failed for alert %s: %s", alert.alert_id, reason)
        return DeliveryResult(name, "failed", reason, attempted_at)

    if callable(hook):
        try:
            hook(alert)
        # A callable hook is arbitrary user code; this function promises never to raise,
        # so every exception is turned into a failed result (and logged), not swallowed.
        except Exception as exc:  # noqa: BLE001
            return failed(f"hook raised {type(exc).__name__}: {exc}")
        return DeliveryResult(name, "delivered", None, attempted_at)

    if isinstance(hook, str):
        try:
            args = shlex.split(hook)
        except ValueError as exc:
            return failed(f"cannot parse hook command: {exc}")
    elif isinstance(hook, Sequence) and all(isinstance(a, (str, os.PathLike)) for a in hook):
        args = [os.fspath(a) for a in hook]
    else:
        return failed(
            f"hook must be a callable, a command string or a list of str, got {type(hook).__name__}"
        )
    if not args:
        return failed("hook command is empty")
    payload = json.dumps(alert.to_dict(), allow_nan=False).encode("utf-8")
    env = {**os.environ, "PERFKIT_ALERT_ID": alert.alert_id}
    try:
        completed = subprocess.run(  # no shell: args is a list
            args,
            input=payload,
            env=env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return failed(f"hook command {args[0]!r} timed out after {timeout:g} s")
    except (OSError, ValueError) as exc:
        return failed(f"hook command {args[0]!r} could not be started: {exc}")
    if completed.returncode != 0:
        stderr = completed.stderr.decode("utf-8", errors="replace").strip()[-_ERROR_TAIL:]
        return failed(
            f"hook command {args[0]!r} exited with status {completed.returncode}"
            + (f": {stderr}" if stderr else "")
        )
    logger.info("retraining hook %r ran for alert %s", args[0], alert.alert_id)
    return DeliveryResult(name, "delivered", None, attempted_at)
