"""Widget classes for the live Voilà dashboard (`notebooks/dashboard.ipynb`, `twin dashboard`).

`Dashboard` is the page: a header with the live badge and the time-window picker, the fleet
overview (`FleetOverview`, one tile per asset, click to select), four cards (`MetricCard` per
sensor, `StatusCard`), one chart per sensor (`ChartPanel` of `SensorChart`, each with its
threshold line), the newest readings (`RecentTable`) and the active alarms with an Acknowledge
button (`AlarmList`). `DashboardData` is its only access to the store: it reads new readings by id
cursor, downsampled history, alarms, and writes nothing but acknowledgements. Colours, timings
and the CSS live in `theme`.

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
from twinlib.dashboard.table import RecentTable

__all__ = [
    "Dashboard", "DashboardData", "StoreUnavailable", "MetricCard", "StatusCard", "SensorChart",
    "ChartPanel", "RecentTable", "AlarmList", "FleetOverview",
]
