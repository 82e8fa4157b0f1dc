"""Notification channels: the webhook (HTTP POST of JSON) and e-mail over SMTP.

A channel does one delivery attempt and raises `DeliveryError` when it fails; retrying with
back-off and keeping the caller unblocked is the dispatcher's job (`twinlib.notify.dispatch`).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any, Mapping, Sequence

from twinlib.notify.message import EVENT_KINDS, email_body, email_subject

__all__ = ["DeliveryError", "Channel", "WebhookChannel", "EmailChannel"]


class DeliveryError(RuntimeError):
    """One delivery attempt failed (the dispatcher may retry)."""


class Channel:
    """Base of a notification channel: a name, which event kinds it wants, and `send`."""

    name = "channel"

    def __init__(self, *, events: Sequence[str] = EVENT_KINDS, timeout_s: float = 5.0):
        unknown = sorted(set(events) - set(EVENT_KINDS))
        if unknown:
            raise ValueError(f"{self.name}: unknown event kinds {unknown}; "
                             f"choose from {list(EVENT_KINDS)}")
        self.events = tuple(events)
        self.timeout_s = float(timeout_s)

    def wants(self, payload: Mapping[str, Any]) -> bool:
        """Whether this channel sends a notification for this event."""
        return payload.get("kind") in self.events

    def send(self, payload: Mapping[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class WebhookChannel(Channel):
    """POST each event as JSON to a URL; any 2xx answer counts as delivered.

    With a `secret`, the body is signed: header `X-Twin-Signature: sha256=<hex HMAC>` lets the
    receiver check that the call came from this twin.
    """

    name = "webhook"

    def __init__(self, url: str, *, headers: Mapping[str, str] | None = None,
                 secret: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https://, got {url!r}")
        self.url = url
        self.headers = dict(headers or {})
        self.secret = secret

    def send(self, payload: Mapping[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "twinlib-notify",
                   **self.headers}
        if payload.get("event_id"):
            # the same event may arrive twice (delivery is at least once): receivers dedupe on it
            headers["X-Twin-Event-Id"] = str(payload["event_id"])
        if self.secret:
            digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Twin-Signature"] = f"sha256={digest}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                status = answer.status
                answer.read()
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"webhook {self.url} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise DeliveryError(f"webhook {self.url} unreachable: {exc}") from exc
        if not 200 <= status < 300:
            raise DeliveryError(f"webhook {self.url} answered HTTP {status}")


class EmailChannel(Channel):
    """Send each event as a plain-text e-mail through an SMTP server.

    `ssl=True` connects with implicit TLS (port 465); `starttls=True` upgrades a plain
    connection. `password_env` names an environment variable holding the password, so the
    settings file need not contain it.
    """

    name = "email"

    def __init__(self, host: str, to: str | Sequence[str], *, port: int = 25,
                 sender: str = "twinlib@localhost", username: str | None = None,
                 password: str | None = None, password_env: str | None = None,
                 starttls: bool = False, use_ssl: bool = False,
                 subject_prefix: str = "[twinlib]", **kwargs):
        super().__init__(**kwargs)
        recipients = [to] if isinstance(to, str) else list(to)
        if not host or not recipients or not all(isinstance(r, str) and "@" in r
                                                  for r in recipients):
            raise ValueError(f"email needs a host and recipient addresses, got host={host!r} "
                             f"to={to!r}")
        self.host, self.port = host, int(port)
        self.to = recipients
        self.sender = sender
        self.username = username
        self.password = password if password is not None else (
            os.environ.get(password_env) if password_env else None)
        self.starttls, self.use_ssl = bool(starttls), bool(use_ssl)
        self.subject_prefix = subject_prefix

    def render(self, payload: Mapping[str, Any]) -> EmailMessage:
        """The e-mail for one event."""
        msg = EmailMessage()
        msg["Subject"] = email_subject(payload, self.subject_prefix)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg.set_content(email_body(payload))
        return msg

    def send(self, payload: Mapping[str, Any]) -> None:
        msg = self.render(payload)
        try:
            if self.use_ssl:
                server = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s,
                                          context=ssl.create_default_context())
            else:
                server = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with server:
                if self.starttls:
                    server.starttls(context=ssl.create_default_context())
                if self.username:
                    server.login(self.username, self.password or "")
                server.send_message(msg)
        except (smtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"email via {self.host}:{self.port} failed: {exc}") from exc
