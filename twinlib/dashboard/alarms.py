"""The active-alarm list, with an Acknowledge button per unacknowledged alarm."""

from __future__ import annotations

import html
from typing import Callable

import ipywidgets as widgets
from traitlets import Any, List, observe

from twinlib.dashboard import theme

__all__ = ["AlarmList"]


def _since(alarm: dict) -> str:
    from twinlib.timeutil import format_ts

    started = alarm.get("started_at")
    return format_ts(int(started))[11:19] if started is not None else ""


class AlarmList(widgets.VBox):
    """Active alarms, unacknowledged first; `on_acknowledge(alert_id)` does the write."""

    alarms = List()                 # alert dicts as store.list_alerts returns them
    on_acknowledge = Any(None)      # callable(alert_id) -> None, set by the dashboard

    def __init__(self, on_acknowledge: Callable[[int], None] | None = None, **kwargs):
        self._header = widgets.HTML()
        self._rows = widgets.VBox()
        self._more = widgets.HTML()
        self._shown_key: tuple | None = None
        self.buttons: dict[int, widgets.Button] = {}
        super().__init__(children=[self._header, self._rows, self._more],
                         on_acknowledge=on_acknowledge, **kwargs)
        self.add_class("twin-panel")
        self.add_class("twin-alarms")
        self._render()

    @staticmethod
    def ordered(alarms) -> list[dict]:
        """Unacknowledged first, then critical before warning, then newest first."""
        return sorted(alarms, key=lambda a: (bool(a.get("acked")), a.get("severity") != "critical",
                                             -(a.get("last_seen") or a.get("started_at") or 0)))

    @observe("alarms")
    def _on_alarms_change(self, change) -> None:
        self._render()

    def _on_ack_click(self, button: widgets.Button) -> None:
        button.disabled = True
        button.description = "…"
        if self.on_acknowledge is not None:
            self.on_acknowledge(button.alert_id)

    def _row(self, alarm: dict) -> widgets.HBox:
        severity = html.escape(str(alarm.get("severity", "warning")))
        acked = bool(alarm.get("acked"))
        note = f' · acked by {html.escape(str(alarm.get("acked_by") or "?"))}' if acked else ""
        text = (f'<div class="text{" acked" if acked else ""}" title="{html.escape(str(alarm.get("message", "")))}">'
                f'<span class="sev {severity}">{severity}</span>'
                f'<b>{html.escape(str(alarm.get("asset_id", "")))}</b> · '
                f'{html.escape(str(alarm.get("message", "")))}'
                f' <span class="acked">since {_since(alarm)}{note}</span></div>')
        children = [widgets.HTML(text)]
        if not acked:
            button = widgets.Button(description="Ack", tooltip="Acknowledge this alarm")
            button.alert_id = int(alarm["id"])
            button.add_class("twin-ack")
            button.on_click(self._on_ack_click)
            self.buttons[button.alert_id] = button
            children.append(button)
        row = widgets.HBox(children)
        row.add_class("twin-alarm")
        return row

    def _render(self) -> None:
        ordered = self.ordered(self.alarms)
        shown = ordered[: theme.ALARM_ROWS]
        key = tuple((a.get("id"), bool(a.get("acked")), a.get("severity"), a.get("message")) for a in shown)
        open_count = sum(1 for a in self.alarms if not a.get("acked"))
        self._header.value = (f'<h3>Active alarms<span class="count">{len(self.alarms)} active · '
                              f"{open_count} unacknowledged</span></h3>")
        if key != self._shown_key:       # rebuild rows only when what they show changed
            self._shown_key = key
            self.buttons = {}
            if shown:
                self._rows.children = [self._row(a) for a in shown]
            else:
                empty = widgets.HTML('<div class="empty">No active alarms.</div>')
                self._rows.children = [empty]
        hidden = len(ordered) - len(shown)
        self._more.value = f'<div class="more">+{hidden} more</div>' if hidden > 0 else ""
