"""Alert channels against real loopback servers (SMTP, HTTP) and real files/processes."""

from __future__ import annotations

import json
import logging
import multiprocessing
import sys
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from perfkit.alerts import (
    CHANNELS,
    Alert,
    CallbackChannel,
    Channel,
    DeliveryResult,
    EmailChannel,
    FileChannel,
    LogChannel,
    WebhookChannel,
    channel_from_config,
    register_channel,
    run_retraining_hook,
)
from perfkit.exceptions import ConfigError, DeliveryError, InputTypeError, ValidationError

HOSTILE = "<script>alert('x')</script>"


def make_alert(**overrides) -> Alert:
    fields = dict(
        model="churn",
        segment="eu",
        metric="accuracy",
        alert_type="performance_degradation",
        severity="critical",
        baseline=0.91,
        current=0.70,
        ci_lower=0.68,
        ci_upper=0.72,
        relative_change=-0.2308,
        p_value=0.0001,
        adjusted_p_value=0.0004,
        timestamp=datetime(2024, 5, 6, 12, 30, tzinfo=UTC),
        batch_id="batch-17",
        model_version="v3",
        metadata={"owner": "ds-team", "note": HOSTILE},
    )
    fields.update(overrides)
    return Alert(**fields)


# ---------------------------------------------------------------------------- Alert
class TestAlert:
    def test_round_trip_is_exact(self):
        alert = make_alert(metadata={"n": 3, "tags": ["a", "b"], "nested": {"x": 1.5}})
        data = alert.to_dict()
        assert json.loads(json.dumps(data, allow_nan=False)) == data
        assert Alert.from_dict(data) == alert
        assert Alert.from_dict(json.loads(json.dumps(data))) == alert

    def test_to_dict_is_json_safe(self):
        alert = make_alert(
            current=float("nan"),
            relative_change=float("-inf"),
            metadata={"when": datetime(2024, 1, 1, tzinfo=UTC), "bad": float("nan")},
        )
        data = alert.to_dict()
        assert data["current"] is None
        assert data["relative_change"] is None
        assert data["metadata"] == {"when": "2024-01-01T00:00:00+00:00", "bad": None}
        assert data["timestamp"] == "2024-05-06T12:30:00+00:00"
        json.dumps(data, allow_nan=False)

    def test_numpy_values_are_plain_floats(self):
        np = pytest.importorskip("numpy")
        alert = make_alert(current=np.float32(0.5), metadata={"k": np.int64(3)})
        assert type(alert.current) is float
        assert alert.to_dict()["metadata"] == {"k": 3}

    def test_defaults(self):
        a, b = (Alert(model="m", alert_type="low_performance", severity="minor") for _ in "ab")
        assert a.alert_id != b.alert_id and len(a.alert_id) == 32
        assert a.timestamp.tzinfo is UTC
        assert a.metric is None and a.message == "" and a.metadata == {}

    def test_timestamp_normalised_to_utc(self):
        cet = timezone(timedelta(hours=2))
        alert = make_alert(timestamp=datetime(2024, 5, 6, 14, 30, tzinfo=cet))
        assert alert.timestamp == datetime(2024, 5, 6, 12, 30, tzinfo=UTC)
        assert alert.timestamp.utcoffset() == timedelta(0)

    @pytest.mark.parametrize(
        ("overrides", "parameter", "error"),
        [
            ({"severity": "high"}, "severity", ValidationError),
            ({"alert_type": "drift"}, "alert_type", ValidationError),
            ({"timestamp": datetime(2024, 1, 1)}, "timestamp", ValidationError),
            ({"current": "0.7"}, "current", InputTypeError),
            ({"model": ""}, "model", ValidationError),
            ({"metadata": [1, 2]}, "metadata", InputTypeError),
        ],
    )
    def test_validation_names_the_parameter(self, overrides, parameter, error):
        with pytest.raises(error) as info:
            make_alert(**overrides)
        assert info.value.parameter == parameter
        assert parameter in str(info.value)

    def test_from_dict_rejects_unknown_keys(self):
        data = make_alert().to_dict() | {"colour": "red"}
        with pytest.raises(ValidationError, match="colour"):
            Alert.from_dict(data)

    def test_frozen_and_hashable(self):
        alert = make_alert()
        with pytest.raises(AttributeError):
            alert.model = "other"
        assert hash(alert) == hash(Alert.from_dict(alert.to_dict()))

    def test_subject(self):
        assert make_alert(relative_change=-0.23).subject() == (
            "[perfkit CRITICAL] model 'churn' (segment 'eu'): accuracy dropped 23.0 % vs baseline"
        )
        low = make_alert(alert_type="low_performance", metric=None, segment=None,
                         severity="moderate")  # fmt: skip
        assert low.subject() == (
            "[perfkit MODERATE] model 'churn': performance below the acceptable level"
        )

    def test_subject_is_one_line_even_with_hostile_input(self):
        alert = make_alert(model="evil\r\nBcc: victim@example.org", message="a\nb")
        subject = alert.subject()
        assert "\n" not in subject and "\r" not in subject
        assert subject.endswith(": a")
        assert len(make_alert(model="m" * 1000).subject()) <= 200

    def test_text_names_every_fact(self):
        body = make_alert().text()
        for fact in [
            "churn", "eu", "accuracy", "0.91", "0.7", "0.68", "0.72", "-23.1 %", "critical",
            "performance_degradation", "0.0001", "0.0004", "2024-05-06T12:30:00+00:00",
            "batch-17", "v3", "owner: ds-team", HOSTILE,
        ]:  # fmt: skip
            assert fact in body, fact

    def test_html_escapes_every_user_string(self):
        alert = make_alert(
            model="<m&>",
            segment="<seg>",
            metric="<met>",
            batch_id="<batch>",
            message="<b>msg</b>",
            metadata={"<key>": HOSTILE},
        )
        body = alert.html()
        for raw in ["<m&>", "<seg>", "<met>", "<batch>", "<b>msg", "<key>", "<script>"]:
            assert raw not in body, raw
        for escaped in ["&lt;m&amp;&gt;", "&lt;seg&gt;", "&lt;met&gt;", "&lt;batch&gt;",
                        "&lt;key&gt;", "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"]:  # fmt: skip
            assert escaped in body, escaped

    def test_delivery_result(self):
        with pytest.raises(ValidationError):
            DeliveryResult("x", "lost", None, datetime.now(UTC))
        result = DeliveryResult("x", "failed", "boom", datetime(2024, 1, 1, tzinfo=UTC))
        assert not result.ok
        assert result.to_dict()["attempted_at"] == "2024-01-01T00:00:00+00:00"


# ---------------------------------------------------------------------------- email
class TestEmailChannel:
    def channel(self, server, **options) -> EmailChannel:
        options.setdefault("timeout", 5.0)
        return EmailChannel(
            server.host,
            server.port,
            sender="perfkit@example.org",
            recipients=["ml-team@example.org", "oncall@example.org"],
            **options,
        )

    def test_delivers_multipart_message(self, smtp_server):
        alert = make_alert()
        result = self.channel(smtp_server).deliver(alert)
        assert result.ok and result.channel == "email" and result.error is None
        assert len(smtp_server.messages) == 1
        message = smtp_server.messages[0]
        assert message["Subject"] == alert.subject()
        assert message["X-Perfkit-Alert-Id"] == alert.alert_id
        assert smtp_server.envelopes[0] == (
            "perfkit@example.org",
            ["ml-team@example.org", "oncall@example.org"],
        )
        assert message.get_content_type() == "multipart/alternative"
        plain = message.get_body(("plain",)).get_content()
        html_part = message.get_body(("html",)).get_content()
        assert plain.replace("\r\n", "\n") == alert.text()
        assert "&lt;script&gt;" in html_part and "<script>" not in html_part
        assert HOSTILE in plain

    def test_down_then_back(self, smtp_server):
        channel = self.channel(smtp_server, timeout=2.0)
        smtp_server.stop()
        failed = channel.deliver(make_alert())
        assert failed.status == "failed"
        assert f"{smtp_server.host}:{smtp_server.port}" in failed.error
        with pytest.raises(DeliveryError) as info:
            channel.send(make_alert())
        assert isinstance(info.value.__cause__, OSError)

        smtp_server.start()  # same port
        assert channel.deliver(make_alert()).ok
        assert len(smtp_server.messages) == 1

    def test_timeout_on_silent_server(self, blackhole_server):
        channel = EmailChannel(
            blackhole_server.host,
            blackhole_server.port,
            sender="perfkit@example.org",
            recipients="ml@example.org",
            timeout=0.5,
        )
        start = time.monotonic()
        result = channel.deliver(make_alert())
        assert result.status == "failed"
        assert time.monotonic() - start < 3.0
        assert "timed out" in result.error.lower() or "timeout" in result.error.lower()

    def test_starttls_with_login(self, smtp_tls_server):
        server = smtp_tls_server
        channel = self.channel(
            server,
            security="starttls",
            username=server.username,
            password=server.password,
            ssl_context=server.client_ssl_context,
        )
        assert channel.deliver(make_alert()).ok
        assert server.logins == [server.username]
        assert len(server.messages) == 1

    def test_implicit_ssl_with_login(self, smtps_server):
        server = smtps_server
        channel = self.channel(
            server,
            security="ssl",
            username=server.username,
            password=server.password,
            ssl_context=server.client_ssl_context,
        )
        assert channel.deliver(make_alert()).ok
        assert server.logins == [server.username]
        assert len(server.messages) == 1

    def test_password_never_leaks(self, smtp_tls_server, caplog):
        server = smtp_tls_server
        wrong = "Wr0ng-Pa55-xyz"
        channel = self.channel(
            server,
            security="starttls",
            username=server.username,
            password=wrong,
            ssl_context=server.client_ssl_context,
        )
        assert wrong not in repr(channel) and "***" in repr(channel)
        with caplog.at_level(logging.DEBUG, logger="perfkit"):
            result = channel.deliver(make_alert())
        assert result.status == "failed"
        assert "SMTPAuthenticationError" in result.error
        assert wrong not in result.error
        assert wrong not in caplog.text
        assert server.messages == []

    def test_untrusted_certificate_fails(self, smtp_tls_server):
        server = smtp_tls_server
        channel = self.channel(
            server, security="starttls", username=server.username, password=server.password
        )  # default context: the self-signed certificate is not trusted
        result = channel.deliver(make_alert())
        assert result.status == "failed"
        assert "SSL" in result.error

    def test_password_env(self, smtp_tls_server, monkeypatch):
        server = smtp_tls_server
        monkeypatch.setenv("PERFKIT_TEST_SMTP_PASSWORD", server.password)
        channel = self.channel(
            server,
            security="starttls",
            username=server.username,
            password_env="PERFKIT_TEST_SMTP_PASSWORD",
            ssl_context=server.client_ssl_context,
        )
        assert server.password not in repr(channel)
        assert channel.deliver(make_alert()).ok
        monkeypatch.delenv("PERFKIT_TEST_SMTP_PASSWORD")
        result = channel.deliver(make_alert())
        assert result.status == "failed" and "PERFKIT_TEST_SMTP_PASSWORD" in result.error

    @pytest.mark.parametrize(
        ("options", "word"),
        [
            ({"security": "tls"}, "security"),
            ({"recipients": []}, "recipients"),
            ({"port": 0}, "port"),
            ({"timeout": 0}, "timeout"),
            ({"password": "x"}, "username"),
            ({"username": "u"}, "password"),
        ],
    )
    def test_bad_options(self, options, word):
        kwargs = {"sender": "a@b.org", "recipients": ["c@d.org"], **options}
        port = kwargs.pop("port", 25)
        with pytest.raises(ConfigError, match=word):
            EmailChannel("localhost", port, **kwargs)


# ---------------------------------------------------------------------------- webhook
class TestWebhookChannel:
    def test_json_body_equals_to_dict(self, http_server):
        alert = make_alert()
        channel = WebhookChannel(
            http_server.url + "/hooks/T0/s3cr3t-token", headers={"Authorization": "Bearer tok"}
        )
        result = channel.deliver(alert)
        assert result.ok and result.channel == "webhook"
        (request,) = http_server.requests
        assert request.path == "/hooks/T0/s3cr3t-token"
        assert request.json == alert.to_dict()
        assert Alert.from_dict(request.json) == alert
        assert request.headers["Content-Type"].startswith("application/json")
        assert request.headers["Authorization"] == "Bearer tok"

    def test_slack_payload(self, http_server):
        alert = make_alert(model="a<b>&c")
        assert WebhookChannel(http_server.url + "/slack", format="slack").deliver(alert).ok
        payload = http_server.requests[0].json
        assert payload["text"] == (
            "[perfkit CRITICAL] model 'a&lt;b&gt;&amp;c' (segment 'eu'): "
            "accuracy dropped 23.1 % vs baseline"
        )
        blocks = payload["blocks"]
        assert all(block["type"] in {"section", "context"} for block in blocks)
        fields = blocks[1]["fields"]
        assert 1 <= len(fields) <= 10
        assert all(f["type"] == "mrkdwn" and len(f["text"]) <= 2000 for f in fields)
        texts = json.dumps(payload)
        assert "<script>" not in texts and "&lt;script&gt;" in texts
        assert "a<b>" not in texts

    def test_500_then_200(self, http_server, caplog):
        channel = WebhookChannel(http_server.url + "/hook/secret-token-123", timeout=2.0)
        http_server.status = 500
        with caplog.at_level(logging.DEBUG, logger="perfkit"):
            failed = channel.deliver(make_alert())
        assert failed.status == "failed" and "500" in failed.error
        assert "secret-token-123" not in failed.error
        assert "secret-token-123" not in caplog.text
        assert http_server.url in failed.error  # scheme + host + port only

        http_server.status = 200
        assert channel.deliver(make_alert()).ok
        assert len(http_server.requests) == 2

    @pytest.mark.parametrize("status", [204, 202])
    def test_other_2xx_is_delivered(self, http_server, status):
        http_server.status = status
        assert WebhookChannel(http_server.url).deliver(make_alert()).ok

    def test_redirect_is_not_followed(self, http_server):
        http_server.status = 302
        result = WebhookChannel(http_server.url + "/x").deliver(make_alert())
        assert result.status == "failed" and "302" in result.error

    def test_connection_refused(self, http_server):
        url = http_server.url + "/hook"
        http_server.stop()
        result = WebhookChannel(url, timeout=2.0).deliver(make_alert())
        assert result.status == "failed"
        assert "could not be reached" in result.error

    def test_timeout_on_silent_server(self, blackhole_server):
        channel = WebhookChannel(blackhole_server.url + "/token", timeout=0.5)
        start = time.monotonic()
        result = channel.deliver(make_alert())
        assert result.status == "failed"
        assert time.monotonic() - start < 3.0
        assert "timed out" in result.error.lower()
        assert "/token" not in result.error

    def test_send_chains_the_cause(self, http_server):
        http_server.status = 503
        with pytest.raises(DeliveryError) as info:
            WebhookChannel(http_server.url).send(make_alert())
        assert info.value.__cause__ is not None

    @pytest.mark.parametrize(
        ("url", "options"),
        [
            ("ftp://example.org/x", {}),
            ("example.org/hook", {}),
            ("https://example.org", {"format": "teams"}),
            ("https://example.org", {"timeout": -1}),
        ],
    )
    def test_bad_options(self, url, options):
        with pytest.raises(ConfigError):
            WebhookChannel(url, **options)

    def test_repr_hides_token(self):
        channel = WebhookChannel("https://hooks.example.org/services/T0/B0/XXSECRET")
        assert "XXSECRET" not in repr(channel)
        assert channel.safe_url == "https://hooks.example.org"


# ---------------------------------------------------------------------------- log / file / callback
def test_log_channel_levels(caplog):
    channel = LogChannel()
    with caplog.at_level(logging.DEBUG, logger="perfkit"):
        assert channel.deliver(make_alert(severity="critical")).ok
        assert channel.deliver(make_alert(severity="minor")).ok
    records = [r for r in caplog.records if r.getMessage().startswith("[perfkit")]
    assert [r.levelno for r in records] == [logging.CRITICAL, logging.WARNING]
    assert records[0].perfkit_alert["model"] == "churn"


def test_file_channel_appends_lines(tmp_path):
    path = tmp_path / "deep" / "dir" / "alerts.jsonl"
    channel = FileChannel(path)
    alerts = [make_alert(), make_alert(severity="minor")]
    assert all(channel.deliver(a).ok for a in alerts)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [Alert.from_dict(json.loads(line)) for line in lines] == alerts


def test_file_channel_failure(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    result = FileChannel(blocker / "alerts.jsonl").deliver(make_alert())
    assert result.status == "failed" and "not-a-dir" in result.error


def _append_alerts(path: str, worker: int, count: int) -> None:
    channel = FileChannel(path)
    padding = "x" * 6000  # lines larger than a page make interleaving visible if it happened
    for i in range(count):
        channel.send(make_alert(batch_id=f"{worker}-{i}", metadata={"pad": padding}))


def test_file_channel_concurrent_processes(tmp_path):
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method")
    path = tmp_path / "alerts.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_append_alerts, args=(str(path), worker, 50)) for worker in range(4)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    records = [json.loads(line) for line in lines[:-1]]
    assert len(records) == 200
    assert sorted(r["batch_id"] for r in records) == sorted(
        f"{w}-{i}" for w in range(4) for i in range(50)
    )


def test_file_channel_removes_a_torn_last_line(tmp_path, caplog):
    path = tmp_path / "alerts.jsonl"
    channel = FileChannel(path)
    first, second = make_alert(), make_alert(severity="minor")
    assert channel.deliver(first).ok
    whole = path.read_bytes()
    fragment = json.dumps(make_alert(metadata={"pad": "y" * 70_000}).to_dict()).encode()[:-9]
    path.write_bytes(whole + fragment)  # longer than one 64 KiB read back from the end
    with caplog.at_level(logging.WARNING, logger="perfkit"):
        assert channel.deliver(second).ok
    assert f"torn last line of {len(fragment)} bytes" in caplog.text
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [Alert.from_dict(json.loads(line)) for line in lines] == [first, second]
    path.write_bytes(fragment)  # a file holding only a fragment
    assert channel.deliver(first).ok
    assert [json.loads(line)["alert_id"] for line in path.read_text().splitlines()] == [first.alert_id]


def test_callback_channel():
    seen: list[Alert] = []
    alert = make_alert()
    channel = CallbackChannel(seen.append, name="memory")
    result = channel.deliver(alert)
    assert result.ok and result.channel == "memory" and result.error is None
    assert seen == [alert] and seen[0] is alert


def test_callback_raising_is_a_failed_delivery():
    def explode(alert):
        raise RuntimeError("pager quota exceeded")

    channel = CallbackChannel(explode)
    assert channel.name == "callback:explode"
    result = channel.deliver(make_alert())
    assert result.status == "failed"
    assert "RuntimeError" in result.error and "pager quota exceeded" in result.error
    with pytest.raises(DeliveryError) as info:
        channel.send(make_alert())
    assert isinstance(info.value.__cause__, RuntimeError)


def test_deliver_lets_programming_errors_through():
    class Broken(Channel):
        name = "broken"

        def send(self, alert):
            raise KeyError("bug")

    with pytest.raises(KeyError):
        Broken().deliver(make_alert())


# ---------------------------------------------------------------------------- registry
def test_registry_builds_every_kind(tmp_path):
    assert set(CHANNELS) >= {"log", "file", "email", "webhook", "callback"}
    assert isinstance(channel_from_config("log"), LogChannel)
    assert isinstance(channel_from_config("file", path=tmp_path / "a.jsonl"), FileChannel)
    email = channel_from_config(
        "email", host="localhost", sender="a@b.org", recipients=["c@d.org"], security="starttls"
    )
    assert isinstance(email, EmailChannel) and email.security == "starttls"
    assert isinstance(channel_from_config("webhook", url="http://127.0.0.1:9/x"), WebhookChannel)
    assert isinstance(channel_from_config("callback", func=print), CallbackChannel)


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(ConfigError) as info:
        channel_from_config("pagerduty", key="x")
    message = str(info.value)
    assert "pagerduty" in message
    for kind in ("log", "file", "email", "webhook", "callback"):
        assert kind in message


def test_bad_options_become_config_error():
    with pytest.raises(ConfigError, match="webhook"):
        channel_from_config("webhook", url="https://example.org", colour="red")


def test_register_rejects_duplicates():
    with pytest.raises(ConfigError, match="already registered"):
        register_channel("log", LogChannel)


# ---------------------------------------------------------------------------- retraining hook
def test_retraining_hook_callable():
    calls: list[Alert] = []
    alert = make_alert(alert_type="retraining_trigger")
    result = run_retraining_hook(calls.append, alert)
    assert result.ok and calls == [alert]

    def failing(alert):
        raise ValueError("no GPU")

    result = run_retraining_hook(failing, alert)
    assert result.status == "failed" and "no GPU" in result.error


def test_retraining_hook_command(tmp_path):
    out = tmp_path / "received.json"
    script = (
        "import os, sys, pathlib;"
        f"pathlib.Path({str(out)!r}).write_text("
        "os.environ['PERFKIT_ALERT_ID'] + '\\n' + sys.stdin.read())"
    )
    alert = make_alert(alert_type="retraining_trigger")
    result = run_retraining_hook([sys.executable, "-c", script], alert)
    assert result.ok, result.error
    alert_id, payload = out.read_text().split("\n", 1)
    assert alert_id == alert.alert_id
    assert Alert.from_dict(json.loads(payload)) == alert


def test_retraining_hook_command_failures(tmp_path):
    alert = make_alert(alert_type="retraining_trigger")
    bad_exit = run_retraining_hook(
        [sys.executable, "-c", "import sys; sys.stderr.write('disk full'); sys.exit(3)"], alert
    )
    assert bad_exit.status == "failed"
    assert "status 3" in bad_exit.error and "disk full" in bad_exit.error

    slow = run_retraining_hook(
        [sys.executable, "-c", "import time; time.sleep(30)"], alert, timeout=0.5
    )
    assert slow.status == "failed" and "timed out" in slow.error

    missing = run_retraining_hook(str(tmp_path / "no-such-program") + " --flag", alert)
    assert missing.status == "failed" and "could not be started" in missing.error

    not_a_hook = run_retraining_hook(42, alert)
    assert not_a_hook.status == "failed"
