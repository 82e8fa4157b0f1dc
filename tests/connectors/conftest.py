"""Fixtures of the connector tests: the simulated plant's OPC UA and Modbus servers on free
loopback ports, and Mosquitto (helpers in connector_helpers.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from connector_helpers import PLANT_ASSETS, Mosquitto, PlantServers, free_port  # noqa: E402


@pytest.fixture(scope="module")
def plant_servers():
    servers = PlantServers(list(PLANT_ASSETS), opcua_port=free_port(), modbus_port=free_port())
    servers.start(timeout=120)
    servers.free = list(PLANT_ASSETS)
    yield servers
    servers.stop()


@pytest.fixture
def plant(plant_servers):
    """The module's plant servers, and `plant.pair`: two assets no other test has used."""
    plant_servers.resume()  # a test may have left it paused
    plant_servers.pair = [plant_servers.free.pop(0), plant_servers.free.pop(0)]
    yield plant_servers


@pytest.fixture
def mosquitto(tmp_path):
    try:
        broker = Mosquitto(tmp_path / "mosquitto")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    yield broker
    broker.close()
