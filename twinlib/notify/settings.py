"""Build the notifier from the settings file's `[notify.webhook]` and `[notify.email]` tables.

```toml
[notify]                      # optional defaults for every channel
retries = 5                   # attempts after the first
backoff_s = 1.0               # first retry delay; doubles each time
max_backoff_s = 60.0
queue_size = 1000             # accepted, unused: the outbox in the database is not bounded

[notify.webhook]
url = "https://hooks.example/twin"
headers = { Authorization = "Bearer ..." }
secret = "..."                # optional: sign the body (X-Twin-Signature)
events = ["raised", "escalated", "cleared"]
timeout_s = 5.0

[notify.email]
host = "smtp.example"
port = 587
starttls = true
from = "twin@example"
to = ["ops@example"]
username = "twin"
password_env = "TWIN_SMTP_PASSWORD"
```
A table with `enabled = false` is ignored. A mistake in a table raises `ValueError` naming it,
so a typo is found at start-up, not when the first alarm fires.
"""
from __future__ import annotations

from typing import Any, Mapping

from twinlib.notify.channels import Channel, EmailChannel, WebhookChannel
from twinlib.notify.dispatch import Notifier
from twinlib.notify.message import EVENT_KINDS

__all__ = ["channels_from_settings", "notifier_from_settings"]

_COMMON = {"events", "timeout_s", "retries", "backoff_s", "enabled"}
_WEBHOOK = _COMMON | {"url", "headers", "secret"}
_EMAIL = _COMMON | {"host", "port", "from", "sender", "to", "username", "password",
                    "password_env", "starttls", "ssl", "subject_prefix"}


def _check_keys(section: str, table: Mapping[str, Any], allowed: set) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ValueError(f"[{section}]: unknown keys {unknown}; allowed: {sorted(allowed)}")


def _common(table: Mapping[str, Any]) -> dict:
    out = {"events": tuple(table.get("events", EVENT_KINDS)),
           "timeout_s": float(table.get("timeout_s", 5.0))}
    return out


def _tune(channel: Channel, table: Mapping[str, Any]) -> Channel:
    # Per-channel retry settings override the [notify] defaults (the dispatcher reads them).
    if "retries" in table:
        channel.retries = int(table["retries"])
    if "backoff_s" in table:
        channel.backoff_s = float(table["backoff_s"])
    return channel


def channels_from_settings(file: Mapping[str, Any]) -> list[Channel]:
    """The channels configured in a parsed settings file (`Settings.file`)."""
    notify = (file or {}).get("notify") or {}
    if not isinstance(notify, Mapping):
        raise ValueError("[notify] must be a table")
    channels: list[Channel] = []
    hook = notify.get("webhook")
    if hook is not None:
        if not isinstance(hook, Mapping):
            raise ValueError("[notify.webhook] must be a table")
        _check_keys("notify.webhook", hook, _WEBHOOK)
        if hook.get("enabled", True):
            if "url" not in hook:
                raise ValueError("[notify.webhook] needs url")
            channels.append(_tune(WebhookChannel(hook["url"], headers=hook.get("headers"),
                                                 secret=hook.get("secret"), **_common(hook)), hook))
    mail = notify.get("email")
    if mail is not None:
        if not isinstance(mail, Mapping):
            raise ValueError("[notify.email] must be a table")
        _check_keys("notify.email", mail, _EMAIL)
        if mail.get("enabled", True):
            if "host" not in mail or "to" not in mail:
                raise ValueError("[notify.email] needs host and to")
            channels.append(_tune(EmailChannel(
                mail["host"], mail["to"], port=int(mail.get("port", 25)),
                sender=mail.get("from", mail.get("sender", "twinlib@localhost")),
                username=mail.get("username"), password=mail.get("password"),
                password_env=mail.get("password_env"), starttls=bool(mail.get("starttls", False)),
                use_ssl=bool(mail.get("ssl", False)),
                subject_prefix=mail.get("subject_prefix", "[twinlib]"), **_common(mail)), mail))
    return channels


def notifier_from_settings(file: Mapping[str, Any], db_path=None) -> Notifier:
    """A `Notifier` with the configured channels (none configured: it sends nothing); its
    outbox is `db_path`'s (or the database of the monitor that starts it)."""
    notify = (file or {}).get("notify") or {}
    return Notifier(channels_from_settings(file), db_path=db_path,
                    retries=int(notify.get("retries", 5)),
                    backoff_s=float(notify.get("backoff_s", 1.0)),
                    max_backoff_s=float(notify.get("max_backoff_s", 60.0)),
                    queue_size=int(notify.get("queue_size", 1000)))
