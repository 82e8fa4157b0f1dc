"""Widget classes for the live Voilà dashboard (`notebooks/dashboard.ipynb`, `twin dashboard`).

`Dashboard` is the page: a header with the live badge and the time-window picker, the fleet
overview (`FleetOverview`, one tile per asset grouped by location, click to select), one card per
measured signal of the selected asset's kind (`MetricCard`, with its unit and limit) plus the
`StatusCard`, one chart per measured signal (`ChartPanel` of `SensorChart`, with the kind's
warning and critical limit lines), the newest readings (`RecentTable`, a column per signal) and
the active alarms with an Acknowledge button (`AlarmList`). The widgets are thin views of a plain
`DashboardState` (what is selected, what was read, the cursors); `signals.signal_views(kind)` is
the one place that turns a kind into what is drawn. `DashboardData` is the only access to the
store: it reads new readings by id cursor, downsampled history, alarms, each asset's kind and
location, and writes nothing but acknowledgements. Colours, timings and the CSS live in `theme`.
Every status on the page has one source (`status`: the alarms the engine recorded, while the
monitor's heartbeat is fresh; "detection not running" otherwise); `clock` holds the time zone,
the data's age (stale) and the gaps that break chart lines. `twin dashboard` serves it with the
offline Voilà template in `share/` and, beyond loopback, a token (`jupyter_config/voila.py`).

    from twinlib.dashboard import Dashboard
    dashboard = Dashboard.from_settings()   # TWIN_DB names the database
    dashboard.refresh()                     # first paint
    dashboard.start()                       # then every 2 s on the kernel's event loop
    dashboard
"""

from twinlib.dashboard.alarms import AlarmList
from twinlib.dashboard.app import Dashboard
from twinlib.dashboard.cards import MetricCard, StatusCard
from twinlib.dashboard.chart import ChartPanel, SensorChart
from twinlib.dashboard.data import DashboardData, StoreUnavailable
from twinlib.dashboard.fleet import FleetOverview
from twinlib.dashboard.signals import SignalView, signal_views
from twinlib.dashboard.state import DashboardState
from twinlib.dashboard.table import RecentTable

__all__ = [
    "Dashboard", "DashboardData", "StoreUnavailable", "MetricCard", "StatusCard", "SensorChart",
    "ChartPanel", "RecentTable", "AlarmList", "FleetOverview", "DashboardState", "SignalView",
    "signal_views",
]
