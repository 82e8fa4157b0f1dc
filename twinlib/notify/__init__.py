"""Notifications: tell someone when an alarm is raised, escalates or clears.

The monitor hands the `AlarmEvent`s of the detection engine to a `Notifier`
(`notifier_from_settings(settings.file)`), which renders each one once (`event_payload`) into
the store's durable outbox — in the same transaction as the alarm transition (`Notifier.stage`)
— and its background workers deliver them to the configured channels, a webhook
(`WebhookChannel`, HTTP POST of JSON) and e-mail (`EmailChannel`, SMTP), retrying with back-off.
Staging never blocks, so a failing endpoint cannot stall ingestion, and nothing waits only in
memory: what a crash or a stop leaves undelivered is sent at the next start (at least once;
`event_id` names each event for receivers that deduplicate). `twin notify status` shows what is
pending or failed.
"""
from twinlib.notify.channels import Channel, DeliveryError, EmailChannel, WebhookChannel
from twinlib.notify.dispatch import ChannelStats, Notifier
from twinlib.notify.message import EVENT_KINDS, email_body, email_subject, event_payload
from twinlib.notify.settings import channels_from_settings, notifier_from_settings

__all__ = ["Channel", "DeliveryError", "EmailChannel", "WebhookChannel", "ChannelStats",
           "Notifier", "EVENT_KINDS", "email_body", "email_subject", "event_payload",
           "channels_from_settings", "notifier_from_settings"]
