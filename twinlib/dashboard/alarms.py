"""The alarm panel (ISA-18.2 alarm management on the dashboard).

* :class:`AlarmList` — the standing alarms (active, or cleared but not yet acknowledged), those
  needing action first, each with text badges (severity, ACTIVE/CLEARED, UNACK/ACK, SHELVED /
  OUT OF SERVICE) and an ``Ack`` button;
* :class:`AlarmPanel` — the widget the dashboard shows: the header count, who acknowledges and an
  optional note, the list, and three views: **Shelve** (reason + duration, unshelve, what is
  shelved or out of service now), **History** (filters: asset, severity, state, time range;
  pages) and **Rates** (the EEMUA 191 figures of :func:`twinlib.detect.alarm_rates.alarm_rates`).

``AlarmPanel(store, settings=None, user=None)`` then ``refresh()``: ``store`` is a twinlib store,
or anything with a ``store`` attribute giving one (``DashboardData``). Acknowledgements and shelves
are recorded as ``user``, else the name typed in the panel, else the configured user
(``TWIN_USER`` / ``[alarms] user``), else ``dashboard``. No emoji: every badge is text.
"""

from __future__ import annotations

import html
from typing import Callable

import ipywidgets as widgets
from traitlets import Any, Dict, List, observe

from twinlib.alarms import alarm_to_json, resolve_user
from twinlib.dashboard import theme
from twinlib.dashboard.status import plain
from twinlib.timeutil import format_iso, now_ms, to_ms

__all__ = ["AlarmList", "AlarmPanel", "badges", "CSS"]

HISTORY_ROWS = 20
SHELVE_DURATIONS = (("15 min", 900), ("1 h", 3600), ("2 h", 7200), ("8 h", 28_800),
                    ("24 h", 86_400), ("7 d", 7 * 86_400))
RATE_RANGES = (("1 h", 3600), ("8 h", 28_800), ("24 h", 86_400), ("7 d", 7 * 86_400))
HISTORY_STATES = (("any state", ""), ("needs action", "attention"), ("standing", "standing"),
                  ("active", "active"), ("cleared", "cleared"), ("unacknowledged", "unacked"),
                  ("acknowledged", "acked"), ("shelved", "shelved"),
                  ("out of service", "out_of_service"))

CSS = f"""<style>
.twin-alarms .badge {{ display: inline-block; font-size: 10px; font-weight: 700; padding: 0 5px;
  border-radius: 4px; margin-right: 4px; border: 1px solid {theme.MUTED}; color: {theme.TEXT}; }}
.twin-alarms .badge.active {{ border-color: {theme.CRITICAL}; color: {theme.CRITICAL}; }}
.twin-alarms .badge.cleared {{ border-color: {theme.OK}; color: {theme.OK}; }}
.twin-alarms .badge.unack {{ background: {theme.WARNING}; border-color: {theme.WARNING};
  color: {theme.BACKGROUND}; }}
.twin-alarms .badge.ack {{ color: {theme.MUTED}; }}
.twin-alarms .badge.shelved, .twin-alarms .badge.oos {{ border-style: dashed; color: {theme.MUTED}; }}
.twin-alarms .twin-alarm-views {{ margin-top: 4px; }}
.twin-alarms table.twin-alarm-history {{ font-size: 11px; border-collapse: collapse; width: 100%; }}
.twin-alarms table.twin-alarm-history td, .twin-alarms table.twin-alarm-history th {{
  padding: 1px 4px; border-bottom: 1px solid {theme.GRID}; text-align: left; white-space: nowrap; }}
.twin-alarms .figures td {{ padding: 0 6px 0 0; font-size: 12px; }}
.twin-alarms .error {{ color: {theme.CRITICAL}; font-size: 12px; }}
</style>"""


def _since(alarm: dict) -> str:
    started = alarm.get("started_at")
    return format_iso(int(started))[11:19] if started is not None else ""


def badges(alarm: dict) -> str:
    """The text badges of one alarm: severity, state, acknowledgement, suppression."""
    esc = html.escape
    severity = esc(str(alarm.get("severity", "warning")))
    active = alarm.get("state") == "active"
    out = [f'<span class="sev {severity}">{severity}</span>',
           f'<span class="badge {"active" if active else "cleared"}">'
           f'{"ACTIVE" if active else "CLEARED"}</span>',
           f'<span class="badge {"ack" if alarm.get("acked") else "unack"}">'
           f'{"ACK" if alarm.get("acked") else "UNACK"}</span>']
    if alarm.get("suppressed") == "shelved":
        until = alarm.get("suppressed_until")
        tail = f" until {format_iso(until)[11:16]} UTC" if until else ""
        out.append(f'<span class="badge shelved">SHELVED{tail}</span>')
    elif alarm.get("suppressed") == "out_of_service":
        out.append('<span class="badge oos">OUT OF SERVICE</span>')
    return "".join(out)


def _needs_action(a: dict) -> bool:
    return not a.get("acked") and not a.get("suppressed")


class AlarmList(widgets.VBox):
    """Standing alarms, those needing action first; ``on_acknowledge(alert_id)`` does the write."""

    alarms = List()                 # alert dicts as the store returns them
    on_acknowledge = Any(None)      # callable(alert_id) -> None, set by the owner

    def __init__(self, on_acknowledge: Callable[[int], None] | None = None, **kwargs):
        self._header = widgets.HTML()
        self._rows = widgets.VBox()
        self._more = widgets.HTML()
        self._shown_key: tuple | None = None
        self.buttons: dict[int, widgets.Button] = {}
        self.on_shelve: Callable[[dict], None] | None = None
        super().__init__(children=[self._header, self._rows, self._more],
                         on_acknowledge=on_acknowledge, **kwargs)
        self.add_class("twin-panel")
        self.add_class("twin-alarms")
        self._render()

    @staticmethod
    def ordered(alarms) -> list[dict]:
        """Needing action first (unacknowledged, not suppressed), then unacknowledged, critical
        before warning, active before cleared, newest first."""
        return sorted(alarms, key=lambda a: (not _needs_action(a), bool(a.get("acked")),
                                             a.get("severity") != "critical",
                                             a.get("state") != "active",
                                             -(a.get("last_seen") or a.get("started_at") or 0)))

    @observe("alarms")
    def _on_alarms_change(self, change) -> None:
        self._render()

    def _on_ack_click(self, button: widgets.Button) -> None:
        button.disabled = True
        button.description = "..."
        if self.on_acknowledge is not None:
            self.on_acknowledge(button.alert_id)

    def _row(self, alarm: dict) -> widgets.HBox:
        acked = bool(alarm.get("acked"))
        esc = html.escape
        note = ""
        if acked:
            note = f' · acked by {esc(str(alarm.get("acked_by") or "?"))}'
            if alarm.get("ack_note"):
                note += f' ("{esc(str(alarm["ack_note"]))}")'
        ended = ""
        if alarm.get("state") != "active" and alarm.get("ended_at") is not None:
            ended = f" to {format_iso(int(alarm['ended_at']))[11:19]}"
        text = (f'<div class="text{" acked" if acked else ""}" title="{esc(plain(alarm.get("message", "")))}">'
                f'{badges(alarm)}'
                f'<b>{esc(str(alarm.get("asset_id", "")))}</b> · '
                f'{esc(plain(alarm.get("message", "")))}'
                f' <span class="acked">since {_since(alarm)}{ended} UTC{note}</span></div>')
        children = [widgets.HTML(text)]
        if not acked:
            button = widgets.Button(description="Ack", tooltip="Acknowledge this alarm")
            button.alert_id = int(alarm["id"])
            button.add_class("twin-ack")
            button.on_click(self._on_ack_click)
            self.buttons[button.alert_id] = button
            children.append(button)
        if self.on_shelve is not None and not alarm.get("suppressed"):
            shelve = widgets.Button(description="Shelve", tooltip="Shelve this alarm's rule")
            shelve.add_class("twin-shelve")
            shelve.on_click(lambda _b, a=alarm: self.on_shelve(a))
            children.append(shelve)
        row = widgets.HBox(children)
        row.add_class("twin-alarm")
        return row

    def _render(self) -> None:
        ordered = self.ordered(self.alarms)
        shown = ordered[: theme.ALARM_ROWS]
        key = tuple((a.get("id"), bool(a.get("acked")), a.get("severity"), a.get("message"),
                     a.get("state"), a.get("suppressed"), a.get("ack_note")) for a in shown)
        need = sum(1 for a in self.alarms if _needs_action(a))
        self._header.value = (f'<h3>Alarms<span class="count">{len(self.alarms)} standing · '
                              f"{need} unacknowledged</span></h3>")
        if key != self._shown_key:       # rebuild rows only when what they show changed
            self._shown_key = key
            self.buttons = {}
            if shown:
                self._rows.children = [self._row(a) for a in shown]
            else:
                empty = widgets.HTML('<div class="empty">No active or unacknowledged alarms.</div>')
                self._rows.children = [empty]
        hidden = len(ordered) - len(shown)
        self._more.value = f'<div class="more">+{hidden} more (see History)</div>' if hidden > 0 else ""


class AlarmPanel(widgets.VBox):
    """The dashboard's alarm panel: standing alarms with Ack (+ note), shelving, history with
    filters, EEMUA 191 rates. Build with ``(store, settings, user)``; call :meth:`refresh`."""

    counts = Dict()                 # store.alarm_counts(): the header's numbers
    on_change = Any(None)           # callable() after an ack / shelve (the owner redraws)

    def __init__(self, store, settings=None, user: str | None = None, *,
                 clock: Callable[[], int] = now_ms, **kwargs):
        self._source = store
        self.settings = settings
        self.user = user
        self._clock = clock
        self.message = ""
        self._history_after = None
        self._history_pages: list = []

        self.style_html = widgets.HTML(CSS)
        self.style_html.layout.display = "none"
        self.list = AlarmList(on_acknowledge=self.acknowledge)
        self.list.on_shelve = self._prefill_shelve
        self.list.remove_class("twin-panel")
        self.by_text = widgets.Text(value="", placeholder=self._default_user(),
                                    description="By", layout=widgets.Layout(width="150px"))
        self.note_text = widgets.Text(value="", placeholder="optional note for the next Ack",
                                      description="Note", layout=widgets.Layout(width="260px"))
        who = widgets.HBox([self.by_text, self.note_text])
        who.add_class("twin-alarm-who")
        self.message_html = widgets.HTML()

        # -- shelve ------------------------------------------------------------------------
        self.shelve_asset = widgets.Text(description="Asset", layout=widgets.Layout(width="180px"))
        self.shelve_rule = widgets.Text(description="Rule", layout=widgets.Layout(width="220px"))
        self.shelve_reason = widgets.Text(description="Reason", placeholder="required",
                                          layout=widgets.Layout(width="260px"))
        self.shelve_duration = widgets.Dropdown(options=list(SHELVE_DURATIONS), value=3600,
                                                description="For", layout=widgets.Layout(width="150px"))
        self.shelve_button = widgets.Button(description="Shelve", tooltip="Shelve the rule")
        self.unshelve_button = widgets.Button(description="Unshelve", tooltip="Remove the shelf")
        self.shelve_button.on_click(lambda _b: self.shelve())
        self.unshelve_button.on_click(lambda _b: self.unshelve())
        self.suppressed_html = widgets.HTML()
        shelve_box = widgets.VBox([
            widgets.HBox([self.shelve_asset, self.shelve_rule]),
            widgets.HBox([self.shelve_reason, self.shelve_duration, self.shelve_button,
                          self.unshelve_button]),
            self.suppressed_html])

        # -- history -----------------------------------------------------------------------
        self.h_asset = widgets.Dropdown(options=[("any asset", "")], value="", description="Asset",
                                        layout=widgets.Layout(width="190px"))
        self.h_severity = widgets.Dropdown(options=[("any", ""), ("critical", "critical"),
                                                    ("warning", "warning")], value="",
                                           description="Severity", layout=widgets.Layout(width="170px"))
        self.h_state = widgets.Dropdown(options=list(HISTORY_STATES), value="",
                                        description="State", layout=widgets.Layout(width="220px"))
        self.h_since = widgets.Text(placeholder="YYYY-MM-DD HH:MM (UTC)", description="From",
                                    layout=widgets.Layout(width="220px"))
        self.h_until = widgets.Text(placeholder="YYYY-MM-DD HH:MM (UTC)", description="To",
                                    layout=widgets.Layout(width="220px"))
        self.h_show = widgets.Button(description="Show", tooltip="Show the alarm history")
        self.h_newer = widgets.Button(description="Newer", disabled=True)
        self.h_older = widgets.Button(description="Older", disabled=True)
        self.h_show.on_click(lambda _b: self.show_history())
        self.h_older.on_click(lambda _b: self.show_history(page="older"))
        self.h_newer.on_click(lambda _b: self.show_history(page="newer"))
        self.history_html = widgets.HTML()
        self.history_rows: list[dict] = []
        history_box = widgets.VBox([
            widgets.HBox([self.h_asset, self.h_severity, self.h_state]),
            widgets.HBox([self.h_since, self.h_until, self.h_show, self.h_newer, self.h_older]),
            self.history_html])

        # -- rates -------------------------------------------------------------------------
        self.rates_range = widgets.ToggleButtons(options=list(RATE_RANGES), value=86_400)
        self.rates_range.observe(lambda _c: self.show_rates(), "value")
        self.rates_html = widgets.HTML()
        self.rates: dict = {}
        rates_box = widgets.VBox([self.rates_range, self.rates_html])

        # collapsed until opened: the standing list stays in view on a small screen
        self.views = widgets.Accordion(children=[shelve_box, history_box, rates_box],
                                       titles=("Shelve", "History", "Rates (EEMUA 191)"))
        self.views.selected_index = None
        self.views.add_class("twin-alarm-views")
        self.views.observe(self._on_view, "selected_index")
        super().__init__(children=[self.style_html, self.list, who, self.message_html, self.views],
                         **kwargs)
        self.add_class("twin-panel")
        self.add_class("twin-alarms")

    # -- compatibility with the list the dashboard used to hold -------------------------------
    @property
    def alarms(self) -> list:
        return self.list.alarms

    @property
    def buttons(self) -> dict:
        return self.list.buttons

    @property
    def _rows(self):
        return self.list._rows

    ordered = staticmethod(AlarmList.ordered)

    # -- reading -------------------------------------------------------------------------------
    @property
    def store(self):
        """The store to use now (a DashboardData gives one per thread)."""
        src = self._source
        return src.store if hasattr(src, "store") and not hasattr(src, "standing_alarms") else src

    def _default_user(self) -> str:
        return resolve_user(self.settings, self.user, fallback=theme.ACK_BY)

    def who(self) -> str:
        """Who acts: the logged-in user, else the name typed in the panel, else the configured
        user, else ``dashboard``."""
        if self.user and str(self.user).strip():
            return str(self.user).strip()
        typed = self.by_text.value.strip()
        return typed[:100] if typed else resolve_user(self.settings, None, fallback=theme.ACK_BY)

    def collect(self) -> dict:
        """Read what the panel shows (no widget touched: the dashboard's live loop runs this on
        its query thread, then :meth:`show` on the kernel's)."""
        store = self.store
        at = int(self._clock())
        standing = store.standing_alarms(at=at)
        live = [r for r in standing if not r["suppressed"]]
        counts = {"standing": len(standing),
                  "active": sum(r["state"] == "active" for r in live),
                  "unacknowledged": sum(not r["acked"] for r in live),
                  "unacknowledged_cleared": sum(not r["acked"] and r["state"] == "cleared"
                                                for r in live),
                  "shelved": sum(r["suppressed"] == "shelved" for r in standing),
                  "out_of_service": sum(r["suppressed"] == "out_of_service" for r in standing)}
        return {"at": at, "standing": standing, "counts": counts,
                "assets": store.asset_ids(), "suppressions": store.suppressions_in_force(at)}

    def show(self, snapshot: dict) -> None:
        """Put what :meth:`collect` read into the widgets."""
        self.counts = snapshot["counts"]
        self.list.alarms = snapshot["standing"]
        assets = [("any asset", "")] + [(a, a) for a in snapshot["assets"]]
        if list(self.h_asset.options) != assets:
            keep = self.h_asset.value
            self.h_asset.options = assets
            self.h_asset.value = keep if keep in dict(assets).values() else ""
        self._render_suppressed(snapshot["suppressions"])

    def refresh(self) -> None:
        """Re-read the standing alarms and the counts (and the open Rates view)."""
        self.show(self.collect())
        if self.views.selected_index == 2:
            self.show_rates()

    def _on_view(self, change) -> None:
        if change["new"] == 1 and not self.history_rows:
            self.show_history()
        elif change["new"] == 2:
            self.show_rates()

    def _say(self, text: str, error: bool = False) -> None:
        self.message = text
        cls = "error" if error else "more"
        self.message_html.value = f'<div class="{cls}">{html.escape(text)}</div>' if text else ""

    def _changed(self) -> None:
        self.refresh()
        if self.on_change is not None:
            self.on_change()

    # -- acknowledge ---------------------------------------------------------------------------
    def acknowledge(self, alert_id: int) -> dict | None:
        """Acknowledge one alarm as :meth:`who`, with the note typed (then cleared)."""
        note = self.note_text.value.strip() or None
        try:
            row = self.store.acknowledge_alert(int(alert_id), self.who(), note=note)
        except KeyError:
            self._say(f"alarm {alert_id} no longer exists", error=True)
            self._changed()
            return None
        except ValueError as exc:
            self._say(str(exc), error=True)
            self.list._shown_key = None
            self.list._render()
            return None
        self.note_text.value = ""
        self._say("")
        self._changed()
        return row

    # -- shelve --------------------------------------------------------------------------------
    def _prefill_shelve(self, alarm: dict) -> None:
        self.shelve_asset.value = str(alarm.get("asset_id", ""))
        self.shelve_rule.value = str(alarm.get("rule", ""))
        self.views.selected_index = 0

    def shelve(self) -> dict | None:
        """Shelve the rule typed in the Shelve view for the chosen duration, with the reason."""
        asset, rule = self.shelve_asset.value.strip(), self.shelve_rule.value.strip()
        if not asset or not rule:
            self._say("shelving needs an asset and a rule", error=True)
            return None
        store = self.store
        if not store.has_asset(asset):
            self._say(f"unknown asset {asset!r}", error=True)
            return None
        try:
            s = store.shelve_alarm(asset, rule, by=self.who(), reason=self.shelve_reason.value,
                                   duration_s=self.shelve_duration.value, at=int(self._clock()))
        except ValueError as exc:
            self._say(str(exc), error=True)
            return None
        self.shelve_reason.value = ""
        self._say(f"{asset} / {rule} shelved until {format_iso(s['expires_at'])}")
        self._changed()
        return s

    def unshelve(self) -> dict | None:
        """Remove the shelf of the asset and rule typed in the Shelve view."""
        asset, rule = self.shelve_asset.value.strip(), self.shelve_rule.value.strip()
        try:
            s = self.store.unshelve_alarm(asset, rule, by=self.who(), at=int(self._clock()))
        except (KeyError, ValueError) as exc:
            self._say(str(exc.args[0]) if exc.args else "nothing to unshelve", error=True)
            return None
        self._say(f"{asset} / {rule} unshelved")
        self._changed()
        return s

    def _render_suppressed(self, rows: list) -> None:
        if not rows:
            self.suppressed_html.value = '<div class="empty">Nothing shelved or out of service.</div>'
            return
        esc = html.escape
        lines = []
        for s in rows:
            kind = "SHELVED" if s["kind"] == "shelved" else "OUT OF SERVICE"
            until = f" until {format_iso(s['expires_at'])}" if s["expires_at"] else ""
            lines.append(f'<div><span class="badge {"shelved" if s["kind"] == "shelved" else "oos"}">'
                         f'{kind}</span><b>{esc(s["asset_id"])}</b> {esc(s["rule"] or "every rule")}'
                         f'{until} · by {esc(s["actor"])}: {esc(s["reason"])}</div>')
        self.suppressed_html.value = "".join(lines)

    # -- history -------------------------------------------------------------------------------
    def _time(self, text: str, name: str) -> int | None:
        text = text.strip()
        if not text:
            return None
        try:
            return to_ms(text)
        except ValueError:
            raise ValueError(f"{name}: not a time: {text!r} (use YYYY-MM-DD HH:MM, UTC)") from None

    def show_history(self, page: str | None = None) -> list[dict]:
        """Show one page of the history with the chosen filters (``page``: ``older``/``newer``)."""
        try:
            since = self._time(self.h_since.value, "From")
            until = self._time(self.h_until.value, "To")
        except ValueError as exc:
            self._say(str(exc), error=True)
            return []
        if since is not None and until is not None and until <= since:
            self._say("To must be after From", error=True)
            return []
        if page is None:
            self._history_pages = [None]
        elif page == "older" and self._history_after is not None:
            self._history_pages.append(self._history_after)
        elif page == "newer" and len(self._history_pages) > 1:
            self._history_pages.pop()
        after = self._history_pages[-1] if self._history_pages else None
        rows, nxt = self.store.alarm_history(
            asset=self.h_asset.value or None, severity=self.h_severity.value or None,
            state=self.h_state.value or None, since=since, until=until, after=after,
            limit=HISTORY_ROWS, at=int(self._clock()))
        self._history_after = nxt
        self.h_older.disabled = nxt is None
        self.h_newer.disabled = len(self._history_pages) <= 1
        self.history_rows = rows
        self._say("")
        esc = html.escape
        if not rows:
            self.history_html.value = '<div class="empty">No alarms match.</div>'
            return rows
        body = []
        for a in rows:
            j = alarm_to_json(a)
            ack = (f"{esc(j['acked_by'] or '')} {j['acked_at'][11:19]}"
                   + (f" ({esc(j['ack_note'])})" if j["ack_note"] else "")) if j["acked"] else "-"
            body.append(f"<tr><td>{badges(a)}</td><td>{esc(j['asset_id'])}</td>"
                        f"<td>{esc(j['rule'])}</td><td>{j['started_at'][:19].replace('T', ' ')}</td>"
                        f"<td>{(j['ended_at'] or '-')[:19].replace('T', ' ')}</td><td>{ack}</td></tr>")
        self.history_html.value = (
            '<table class="twin-alarm-history"><thead><tr><th>state</th><th>asset</th>'
            "<th>rule</th><th>started (UTC)</th><th>ended</th><th>acknowledged</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")
        return rows

    # -- rates ---------------------------------------------------------------------------------
    def show_rates(self) -> dict:
        """The EEMUA 191 figures for the chosen range up to now."""
        from twinlib.detect.alarm_rates import FLOOD_ALARMS, TARGETS, alarm_rates

        end = int(self._clock())
        ops = 1
        if self.settings is not None:
            try:
                ops = max(1, int(self.settings.section("alarms").get("operators", 1)))
            except (TypeError, ValueError):
                ops = 1
        r = alarm_rates(self.store, end - int(self.rates_range.value) * 1000, end, operators=ops)
        self.rates = r
        peak = r["peak_10min"]
        rows = [
            ("Alarms", f"{r['alarms']} (+{r['suppressed']} suppressed)"),
            ("Per operator-hour", f"{r['per_operator_hour']:g} · {r['rating']['per_operator_hour']} "
                                  f"(target {TARGETS['per_operator_hour']['acceptable']})"),
            ("Peak in 10 min", f"{peak['alarms']}"
                               + (f" from {peak['start'][11:16]} UTC" if peak["start"] else "")
                               + f" · {r['rating']['peak_10min']} (target {FLOOD_ALARMS})"),
            ("Flood windows", f"{r['flood_percent']:g} % of {r['windows_10min']} (target < 1 %)"),
            ("Standing > 24 h", str(len(r["standing"]))),
            ("Chattering", ", ".join(f"{c['asset_id']} {c['rule']}" for c in r["chattering"][:3])
             or "none"),
            ("Top sources", ", ".join(f"{b['asset_id']} {b['rule']} ({b['alarms']})"
                                      for b in r["bad_actors"][:3]) or "none"),
        ]
        self.rates_html.value = '<table class="figures">' + "".join(
            f"<tr><td>{html.escape(k)}</td><td><b>{html.escape(v)}</b></td></tr>" for k, v in rows
        ) + "</table>"
        return r
