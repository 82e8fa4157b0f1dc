"""Fixtures of the monitor tests: local webhook, SMTP and MQTT servers on free ports."""
import pytest

from monitor_helpers import Mosquitto, SmtpSink, WebhookReceiver


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def smtp_sink():
    sink = SmtpSink()
    yield sink
    sink.close()


@pytest.fixture
def mosquitto(tmp_path):
    try:
        broker = Mosquitto(tmp_path / "mosquitto")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    yield broker
    broker.close()
