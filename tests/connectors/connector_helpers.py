"""Helpers of the connector tests: free ports, waiting, the plant's assets and start time, a
monitor running a source in a background thread."""
from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monitor"))

from twinlib.ingest.plant_server import PlantServers  # noqa: E402
from twinlib.monitor import Monitor  # noqa: E402
from twinlib.store import open_store  # noqa: E402
from twinlib.timeutil import now_ms  # noqa: E402

from monitor_helpers import Mosquitto, free_port, wait_until  # noqa: E402

__all__ = ["Running", "free_port", "wait_until", "T0", "subset", "PLANT_ASSETS", "Mosquitto",
           "PlantServers"]

#: Each test gets its own pair of assets of the module's plant (a server that starts once: the
#: OPC UA address space alone takes seconds to build on a loaded machine).
PLANT_ASSETS = [f"pump-{i:02d}" for i in range(1, 21)]
#: Ten minutes ago, on the second: inside the OPC UA source's history window.
T0 = (now_ms() // 1000) * 1000 - 600_000


def subset(mapping_text: str, assets) -> str:
    """The part of a plant mapping (TOML text) about `assets` (and the connector tables)."""
    out, keep = [], True
    for line in mapping_text.splitlines():
        if line.startswith("["):
            keep = ".assets." not in line or any(f'"{a}"' in line for a in assets)
        if keep:
            out.append(line)
    return "\n".join(out)


class Running:
    """A monitor with `source` in a background thread (open() errors are kept in `error`)."""

    def __init__(self, db, source, engine=None):
        self.store = open_store(db, create=True)
        self.source = source
        self.monitor = Monitor(self.store, source, engine=engine, tick_s=0.1)
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.monitor.run()
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            self.error = exc

    def rows(self, asset=None):
        return sorted((r.asset_id, r.ts, r.values) for r in
                      self.store.latest(100_000, asset=asset))

    def stop(self):
        self.monitor.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.store.close()


