"""Notifications: tell someone when an alarm is raised, escalates or clears.

The monitor passes the `AlarmEvent`s returned by the detection engine to a `Notifier`
(`notifier_from_settings(settings.file)`), which renders each one once (`event_payload`) and
hands it to the configured channels — a webhook (`WebhookChannel`, HTTP POST of JSON) and e-mail
(`EmailChannel`, SMTP) — on background workers that retry with back-off. `submit` never blocks,
so a failing endpoint cannot stall ingestion.
"""
from twinlib.notify.channels import Channel, DeliveryError, EmailChannel, WebhookChannel
from twinlib.notify.dispatch import ChannelStats, Notifier
from twinlib.notify.message import EVENT_KINDS, email_body, email_subject, event_payload
from twinlib.notify.settings import channels_from_settings, notifier_from_settings

__all__ = ["Channel", "DeliveryError", "EmailChannel", "WebhookChannel", "ChannelStats",
           "Notifier", "EVENT_KINDS", "email_body", "email_subject", "event_payload",
           "channels_from_settings", "notifier_from_settings"]
