"""The table of the most recent readings of the selected asset, times in the dashboard's zone.

A cell beyond its kind's limit is marked (a fact about that reading, like the limit line on the
chart); the asset's status is the alarms' (`twinlib.dashboard.status`), not this table's.
"""

from __future__ import annotations

import html
import math

import ipywidgets as widgets
from traitlets import Dict, List, observe
from traitlets import Tuple as TTuple

from twinlib.dashboard import theme

__all__ = ["RecentTable"]



class RecentTable(widgets.VBox):
    """The newest `theme.TABLE_ROWS` readings, newest first, one column per measured signal of
    the asset's kind (header with its unit); values beyond a limit in red."""

    rows = List()              # Reading tuples (or dicts with the same fields), newest first
    thresholds = Dict()        # signal -> high warning limit (overrides the views' own)
    signals = TTuple()         # SignalView per column

    def __init__(self, thresholds: dict | None = None, signals=None, zone=None, **kwargs):
        from twinlib.dashboard.clock import ZoneClock
        from twinlib.dashboard.signals import signal_views
        from twinlib.kinds import builtin_kind

        self.zone = zone or ZoneClock("UTC")

        self._body = widgets.HTML()
        views = tuple(signals) if signals is not None else signal_views(builtin_kind())
        super().__init__(children=[self._body], thresholds=dict(thresholds or {}), signals=views,
                         **kwargs)
        self.add_class("twin-panel")
        self.add_class("twin-table")
        self._render()

    @observe("rows", "thresholds", "signals")
    def _on_rows_change(self, change) -> None:
        (self.add_class if len(self.signals) > 4 else self.remove_class)("wide")
        self._render()

    def _cell(self, view, value) -> str:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "<td>—</td>"
        if view.name in self.thresholds:
            from dataclasses import replace

            view = replace(view, warning_high=self.thresholds[view.name])
        over = view.level(value) in ("warning", "critical")
        cls = ' class="over"' if over else ""
        return f"<td{cls}>{view.number(value)}</td>"

    def _render(self) -> None:
        def field(row, name):
            if isinstance(row, dict):
                return row.get(name)
            if name in ("ts", "asset_id"):
                return getattr(row, name)
            values = getattr(row, "values", None)
            return values.get(name) if isinstance(values, dict) else getattr(row, name, None)

        views = self.signals
        head = "".join(f"<th>{html.escape(v.title)}</th>" for v in views)
        body = []
        for row in self.rows[: theme.TABLE_ROWS]:
            cells = "".join(self._cell(v, field(row, v.name)) for v in views)
            body.append(f"<tr><td>{html.escape(self.zone.text(int(field(row, 'ts'))))}</td>"
                        f"<td>{html.escape(str(field(row, 'asset_id')))}</td>{cells}</tr>")
        for _ in range(theme.TABLE_ROWS - len(body)):   # keep the height fixed while filling up
            body.append("<tr>" + "<td>&nbsp;</td>" * (2 + len(views)) + "</tr>")
        self._body.value = (
            f'<h3>Recent readings<span class="count">newest {theme.TABLE_ROWS}</span></h3>'
            '<div class="scroll"><table><thead><tr>'
            f'<th>Time ({html.escape(self.zone.label)})</th><th>Asset</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>"
        )
