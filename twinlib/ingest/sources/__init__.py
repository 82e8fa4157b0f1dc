"""Live sources: where the monitor's readings come from.

Three sources share one small interface (`Source`: `open`, `read`, `commit`, `wait`,
`now_ms`, `close`):

- `SimSource` — the simulated fleet in real time (`twinlib.simulate.FleetSimulator.step`);
- `ReplaySource` — a recorded file (twinlib CSV, SKAB or NAB) replayed at a speed factor;
- `MqttSource` — telemetry that gateways publish to an MQTT broker.

A source only produces readings. `twinlib.monitor.Monitor` stores them through
`twinlib.ingest.ingest_frame` (the one validation path) and then lets the source `commit` its
position, so a restart neither loses nor doubles a reading.
"""
from twinlib.ingest.sources.base import Batch, Source, SourceReject, load_position, save_position
from twinlib.ingest.sources.mqtt import MqttSource, parse_broker, parse_payload, topic_asset
from twinlib.ingest.sources.recordings import FORMATS, open_recording, sniff_format
from twinlib.ingest.sources.replay import TIMESTAMP_MODES, ReplaySource
from twinlib.ingest.sources.sim import SIM_META_KEY, SimSource

__all__ = ["Batch", "Source", "SourceReject", "load_position", "save_position", "MqttSource",
           "parse_broker", "parse_payload", "topic_asset", "FORMATS", "open_recording",
           "sniff_format", "TIMESTAMP_MODES", "ReplaySource", "SIM_META_KEY", "SimSource"]
