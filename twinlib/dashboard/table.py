"""The table of the most recent readings of the selected asset."""

from __future__ import annotations

import html
import math

import ipywidgets as widgets
from traitlets import Dict, List, observe

from twinlib.dashboard import theme

__all__ = ["RecentTable"]

_SENSORS = ("temperature", "vibration", "pressure")


def _fmt_time(ts_ms: int) -> str:
    from twinlib.timeutil import format_ts

    return format_ts(int(ts_ms))


class RecentTable(widgets.VBox):
    """The newest `theme.TABLE_ROWS` readings, newest first; values over their limit in red."""

    rows = List()              # Reading tuples (or dicts with the same fields), newest first
    thresholds = Dict()

    def __init__(self, thresholds: dict, **kwargs):
        self._body = widgets.HTML()
        super().__init__(children=[self._body], thresholds=dict(thresholds), **kwargs)
        self.add_class("twin-panel")
        self.add_class("twin-table")
        self._render()

    @observe("rows", "thresholds")
    def _on_rows_change(self, change) -> None:
        self._render()

    def _cell(self, sensor: str, value) -> str:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "<td>—</td>"
        limit = self.thresholds.get(sensor)
        cls = ' class="over"' if limit is not None and value > limit else ""
        return f"<td{cls}>{value:.{theme.SENSOR_DECIMALS.get(sensor, 2)}f}</td>"

    def _render(self) -> None:
        def field(row, name):
            return row[name] if isinstance(row, dict) else getattr(row, name)

        head = "".join(
            f"<th>{theme.SENSOR_LABELS[s]}{' (' + theme.SENSOR_UNITS[s] + ')' if theme.SENSOR_UNITS[s] else ''}</th>"
            for s in _SENSORS
        )
        body = []
        for row in self.rows[: theme.TABLE_ROWS]:
            cells = "".join(self._cell(s, field(row, s)) for s in _SENSORS)
            body.append(f"<tr><td>{html.escape(_fmt_time(field(row, 'ts')))}</td>"
                        f"<td>{html.escape(str(field(row, 'asset_id')))}</td>{cells}</tr>")
        for _ in range(theme.TABLE_ROWS - len(body)):   # keep the height fixed while filling up
            body.append("<tr>" + "<td>&nbsp;</td>" * (2 + len(_SENSORS)) + "</tr>")
        self._body.value = (
            f'<h3>Recent readings<span class="count">newest {theme.TABLE_ROWS}</span></h3>'
            f"<table><thead><tr><th>Time (UTC)</th><th>Asset</th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
        )
