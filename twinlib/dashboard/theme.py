"""Defaults of the dashboard: colours, timings, window choices and the page CSS, in one place.

Every widget reads its look and its rhythm from here, so a change of palette or refresh period
is one edit. Colours follow the original dashboard: a near-black page (#020617), teal (#14b8a6)
headings and values, cyan (#2dd4bf) card borders.
"""

__all__ = [
    "BACKGROUND", "SURFACE", "SURFACE_RAISED", "TEAL", "CYAN", "TEXT", "MUTED", "GRID",
    "OK", "WARNING", "CRITICAL", "STALE",
    "TITLE", "SUBTITLE", "REFRESH_INTERVAL_S", "STALE_AFTER_S", "HISTORY_REFRESH_S",
    "FORECAST_REFRESH_S", "STATUS_REFRESH_S", "STALE_CADENCES", "HEARTBEAT_MISSED", "HEARTBEAT_MIN_S",
    "GAP_FACTOR", "TABLE_ROWS", "TILE_VALUES", "FLEET_FULL_TILES", "ALARM_ROWS", "CURSOR_PAGE", "CURSOR_MAX_PAGES",
    "WINDOWS", "DEFAULT_WINDOW_S", "LIVE_WINDOW_MAX_S", "CHART_POINTS", "NICE_BUCKETS_S",
    "SPARK_POINTS", "TREND_WINDOW_S", "BACKFILL_MAX_ROWS", "SIGNAL_PALETTE", "CHART_COLUMNS", "CHART_ROW_HEIGHT",
    "CHART_HEIGHT", "TIME_FORMAT", "DAY_TIME_FORMAT", "ACK_BY", "CSS",
]

# -- palette ---------------------------------------------------------------------------------
BACKGROUND = "#020617"
SURFACE = "#0b1222"
SURFACE_RAISED = "#111a2e"
TEAL = "#14b8a6"
CYAN = "#2dd4bf"
TEXT = "#e2e8f0"
MUTED = "#94a3b8"
GRID = "#1e293b"
OK = "#22c55e"
WARNING = "#f59e0b"
CRITICAL = "#ef4444"
STALE = "#64748b"

# -- words -----------------------------------------------------------------------------------
TITLE = "Equipment Digital Twin"
SUBTITLE = "Fleet monitoring"
ACK_BY = "dashboard"

# -- rhythm ----------------------------------------------------------------------------------
REFRESH_INTERVAL_S = 2.0     # one tick of the live loop
STALE_AFTER_S = 10.0         # newest reading older than this (by its timestamp) -> "data stale"
STALE_CADENCES = 5           # ... or than this many of the asset's usual intervals, if longer
STATUS_REFRESH_S = 10.0      # statuses (and staleness of silent assets) re-read at least this often
HEARTBEAT_MISSED = 5         # a monitor whose heartbeat is this many intervals old is not running
HEARTBEAT_MIN_S = 15.0       # ... and never judged on less than this (a loaded machine beats late)
GAP_FACTOR = 3.0             # an interval over this many median intervals is a gap: the line breaks
HISTORY_REFRESH_S = 10.0     # downsampled windows re-read their newest buckets this often
FORECAST_REFRESH_S = 60.0    # forecasts fit trends over an hour of readings: far less often
CURSOR_PAGE = 10_000         # rows per store.after() call
CURSOR_MAX_PAGES = 20        # a backlog larger than this is skipped (the charts reload instead)
BACKFILL_MAX_ROWS = 20_000   # readings of the selected asset kept for the live windows

# -- sizes -----------------------------------------------------------------------------------
TABLE_ROWS = 5
TILE_VALUES = 3               # newest values on a fleet tile (more signals: "+N")
FLEET_FULL_TILES = 5          # more assets than this: one-line tiles, so the fleet row stays short
ALARM_ROWS = 4
SPARK_POINTS = 60
TREND_WINDOW_S = 60          # the trend arrow is the slope over this many seconds of readings
TIME_FORMAT = "%H:%M:%S"       # chart time axis (bqplot's default is a 12-hour clock)
DAY_TIME_FORMAT = "%b %d %H:%M"
CHART_HEIGHT = "max(190px, calc(100vh - 505px))"   # the charts take what the other rows leave

# -- time windows: (label, seconds); windows up to LIVE_WINDOW_MAX_S draw raw readings kept in
# memory, longer ones draw store.downsample buckets (mean line, min-max band).
WINDOWS = (
    ("1 min", 60),
    ("5 min", 300),
    ("15 min", 900),
    ("1 h", 3_600),
    ("6 h", 21_600),
    ("24 h", 86_400),
    ("7 d", 604_800),
)
DEFAULT_WINDOW_S = 300
LIVE_WINDOW_MAX_S = 900
CHART_POINTS = 300           # target buckets per downsampled chart
NICE_BUCKETS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 21_600, 86_400)

# -- signals ---------------------------------------------------------------------------------
# Line colours of an asset's measured signals, in its kind's order (a pump: temperature teal,
# vibration sky, pressure violet, as the first release). Which signals exist comes from the kind
# (`twinlib.dashboard.signals`), never from here.
SIGNAL_PALETTE = (TEAL, "#38bdf8", "#a78bfa", "#f472b6", "#facc15", "#fb923c", "#4ade80", "#e879f9",
                  "#60a5fa", "#2dd4bf")
CHART_COLUMNS = 4            # more measured signals than 3: up to this many charts per row
CHART_ROW_HEIGHT = "210px"   # chart height when the charts take more than one row

# -- page CSS --------------------------------------------------------------------------------
# Voilà's lab template pads the page, paints it white and makes #rendered_cells an absolutely
# placed box of the viewport's size (lumino, `contain: strict`) that scrolls its content. The rules
# below make the whole page the dashboard's dark surface and keep that box scrolling (vertically),
# so every block — charts, readings, alarms and their Ack buttons — can be reached on a phone
# (390x844) or a short laptop screen (1366x600). Columns follow the width: 4 cards / 3 charts / table beside
# alarms on a wide screen, 2 cards / 1 chart / stacked panels below 1100 px.
CSS = f"""
<style>
html, body, body.jp-Notebook, .jp-Notebook, #rendered_cells, .jp-Cell, .jp-OutputArea,
.jp-OutputArea-child, .jp-OutputArea-output, main, .voila-container {{
  background: {BACKGROUND} !important;
}}
html, body {{ margin: 0 !important; padding: 0 !important; }}
body.jp-Notebook, .jp-Notebook {{ padding: 0 !important; }}
/* Voilà sizes #rendered_cells to the viewport (lumino: absolute, contain: strict) and lets it
   scroll: keep that, vertically only (a visible overflow here is what clipped the page) */
#rendered_cells {{ padding: 0 !important; overflow-x: hidden !important; overflow-y: auto !important;
  -webkit-overflow-scrolling: touch; }}
.jp-Cell, .jp-Cell-outputWrapper, .jp-OutputArea, .jp-OutputArea-child,
.jp-OutputArea-output {{ padding: 0 !important; margin: 0 !important; overflow: visible !important; }}
.jp-OutputPrompt, .jp-InputPrompt, .jp-OutputArea-prompt {{ display: none !important; }}
.jp-Cell-inputWrapper {{ display: none !important; }}

.twin-dashboard {{
  box-sizing: border-box; width: 100%; max-width: 1880px; margin: 0 auto;
  padding: 10px 16px 16px 16px; gap: 10px; overflow: visible !important;
  color: {TEXT}; font-family: "Inter", "Segoe UI", system-ui, -apple-system, "DejaVu Sans", sans-serif;
}}
.twin-dashboard .widget-html-content, .twin-dashboard .widget-html {{ color: {TEXT}; }}
.twin-dashboard .widget-html, .twin-dashboard .widget-html-content {{ margin: 0; line-height: normal; height: auto; }}
.twin-icon {{ display: inline-block; vertical-align: -2px; flex: 0 0 auto; }}

/* header */
.twin-header {{ align-items: center; gap: 8px 12px; flex-wrap: wrap; }}
.twin-title h1 {{ margin: 0; font-size: 22px; font-weight: 700; color: {TEAL}; letter-spacing: .2px; }}
.twin-title p {{ margin: 2px 0 0 0; font-size: 12px; color: {MUTED}; }}
.twin-spacer {{ flex: 1 1 auto; }}
.twin-summary {{ font-size: 12px; color: {MUTED}; }}
.twin-summary b {{ color: {TEXT}; font-weight: 600; }}
.twin-summary .warning {{ color: {WARNING}; }} .twin-summary .critical {{ color: {CRITICAL}; }}
.twin-summary .stale {{ color: {STALE}; }}
.twin-summary .nodetect {{ color: {BACKGROUND}; background: {WARNING}; padding: 1px 6px; border-radius: 4px; font-weight: 600; }}
.twin-live {{ font-size: 12px; font-weight: 600; padding: 4px 10px; border-radius: 999px;
  border: 1px solid {GRID}; background: {SURFACE}; white-space: nowrap; }}
.twin-live .dot {{ display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 6px; }}
.twin-live.live {{ color: {OK}; }} .twin-live.live .dot {{ background: {OK}; box-shadow: 0 0 6px {OK}; }}
.twin-live.stale {{ color: {WARNING}; border-color: {WARNING}; }} .twin-live.stale .dot {{ background: {WARNING}; }}
.twin-live.nodata {{ color: {STALE}; }} .twin-live.nodata .dot {{ background: {STALE}; }}
.twin-controls {{ flex-wrap: wrap; gap: 4px; align-items: center; }}
.twin-window .widget-toggle-button {{ width: auto; min-width: 46px; padding: 0 8px; height: 26px; font-size: 12px; }}
.twin-window .widget-toggle-buttons {{ display: flex; flex-wrap: wrap; gap: 3px 0; }}
.twin-dashboard .twin-range-toggle {{ width: auto; min-width: 58px; height: 26px; font-size: 12px; padding: 0 10px; }}
.twin-range {{ flex-wrap: wrap; gap: 6px; align-items: center; width: 100%; justify-content: flex-end; }}
.twin-range .widget-label {{ color: {MUTED}; font-size: 12px; }}
.twin-range input {{ background: {SURFACE}; color: {TEXT}; border: 1px solid {GRID}; height: 26px;
  color-scheme: dark; font-size: 12px; }}
.twin-range .twin-range-picker {{ width: auto; max-width: 100%; }}
.twin-dashboard .twin-range-apply {{ width: auto; height: 26px; font-size: 12px; padding: 0 12px; color: {CYAN}; border-color: {CYAN}; }}
.twin-range-note {{ font-size: 12px; color: {MUTED}; }} .twin-range-note .bad {{ color: {WARNING}; }}
.twin-dashboard .jupyter-button {{ background: {SURFACE}; color: {MUTED}; border: 1px solid {GRID};
  border-radius: 6px; margin: 0 3px 0 0; box-shadow: none; }}
.twin-dashboard .jupyter-button:hover {{ color: {TEXT}; border-color: {CYAN}; }}
.twin-dashboard .jupyter-button.mod-active {{ background: {TEAL}; color: {BACKGROUND}; border-color: {TEAL};
  font-weight: 600; }}

/* fleet overview: the status mark is a CSS shape (no emoji or icon font) */
.twin-fleet {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 8px; }}
.twin-fleet .twin-location {{ grid-column: 1 / -1; font-size: 11px; font-weight: 600; color: {CYAN};
  letter-spacing: .4px; text-transform: uppercase; margin: 2px 0 -4px 0; }}
.twin-dashboard .twin-asset {{ height: 58px; width: auto; margin: 0; padding: 4px 10px 4px 24px; text-align: left;
  white-space: pre-line; line-height: 16px; font-size: 12px; color: {TEXT}; position: relative;
  border-left: 4px solid {STALE}; overflow: hidden; }}
.twin-dashboard .twin-asset::before {{ content: ""; position: absolute; left: 8px; top: 8px; width: 9px; height: 9px;
  border-radius: 50%; background: {STALE}; }}
.twin-dashboard .twin-asset.ok {{ border-left-color: {OK}; }}
.twin-dashboard .twin-asset.ok::before {{ background: {OK}; }}
.twin-dashboard .twin-asset.warning {{ border-left-color: {WARNING}; }}
.twin-dashboard .twin-asset.warning::before {{ background: {WARNING}; border-radius: 0;
  clip-path: polygon(50% 0, 100% 100%, 0 100%); width: 11px; height: 10px; }}
.twin-dashboard .twin-asset.critical {{ border-left-color: {CRITICAL}; }}
.twin-dashboard .twin-asset.critical::before {{ background: {CRITICAL}; border-radius: 1px; }}
.twin-dashboard .twin-asset.stale::before, .twin-dashboard .twin-asset.unknown::before {{ background: none;
  border: 2px solid {STALE}; width: 6px; height: 6px; }}
.twin-dashboard .twin-asset.nodetect {{ border-left-color: {STALE}; }}
.twin-dashboard .twin-asset.nodetect::before {{ background: none; border: 2px solid {WARNING}; width: 6px; height: 6px; }}
.twin-fleet.compact {{ grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 6px; }}
.twin-dashboard .twin-fleet.compact .twin-asset {{ height: 28px; line-height: 18px; padding: 2px 8px 2px 22px; }}
.twin-dashboard .twin-fleet.compact .twin-asset::before {{ top: 9px; }}
.twin-dashboard .twin-asset.selected {{ border-color: {CYAN}; border-left-width: 4px; background: {SURFACE_RAISED};
  box-shadow: 0 0 0 1px {CYAN} inset; }}

/* metric cards */
.twin-cards {{ display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 10px; }}
/* kinds with more signals: the cards wrap into rows of up to 5 (cols-N set by the dashboard) */
.twin-cards.cols-5 {{ grid-template-columns: repeat(5, minmax(0, 1fr)); }}
.twin-cards.many .twin-card {{ min-height: 92px; padding: 8px 12px; }}
.twin-cards.many .twin-card .value {{ font-size: 24px; line-height: 30px; }}
.twin-cards.many .twin-card .label {{ white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
.twin-card {{ background: {SURFACE}; border: 1px solid {CYAN}; border-radius: 10px; padding: 10px 14px;
  min-height: 104px; box-sizing: border-box; overflow: hidden; }}
.twin-card.alarm-warning {{ border-color: {WARNING}; }} .twin-card.alarm-critical {{ border-color: {CRITICAL}; }}
.twin-card .widget-html, .twin-card .widget-html-content {{ width: 100%; min-width: 0; overflow: hidden; }}
.twin-card .label {{ font-size: 13px; color: {MUTED}; font-weight: 600; text-transform: none; }}
.twin-card .value {{ font-size: 30px; font-weight: 700; color: {TEAL}; line-height: 38px; white-space: nowrap; }}
.twin-card .value .unit {{ font-size: 15px; color: {MUTED}; font-weight: 500; margin-left: 4px; }}
.twin-card .value.over {{ color: {CRITICAL}; }}
.twin-card .value.near {{ color: {WARNING}; }}
.twin-card .foot {{ display: flex; align-items: center; justify-content: space-between; gap: 8px;
  font-size: 12px; color: {MUTED}; }}
.twin-card .trend.up {{ color: {WARNING}; }} .twin-card .trend.down {{ color: {CYAN}; }}
.twin-card svg {{ display: block; }}
.twin-card .trend svg, .twin-card .value svg {{ display: inline-block; }}
.twin-status .value {{ font-size: 22px; line-height: 30px; display: flex; align-items: center; gap: 8px;
  white-space: normal; }}
.twin-status .value .sev {{ font-size: 11px; text-transform: uppercase; padding: 1px 6px; border-radius: 4px; }}
.twin-status.critical .value .sev {{ background: {CRITICAL}; color: white; }}
.twin-status.warning .value .sev {{ background: {WARNING}; color: {BACKGROUND}; }}
.twin-status.alert {{ border-color: {CRITICAL}; }}
.twin-status.alert .value {{ color: {CRITICAL}; }}
.twin-status.alert.warning {{ border-color: {WARNING}; }} .twin-status.alert.warning .value {{ color: {WARNING}; }}
.twin-status.normal .value {{ color: {OK}; }}
.twin-status.stale .value, .twin-status.nodata .value, .twin-status.nodetect .value {{ color: {WARNING}; }}
.twin-status.nodetect .value {{ font-size: 18px; line-height: 24px; }}
.twin-status .foot.detail {{ display: block; }}
.twin-status ul {{ margin: 2px 0 0 0; padding-left: 16px; font-size: 12px; color: {TEXT}; }}
.twin-status li {{ white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}

/* charts */
.twin-charts {{ display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 10px; }}
.twin-charts.cols-1 {{ grid-template-columns: minmax(0, 1fr); }}
.twin-charts.cols-2 {{ grid-template-columns: repeat(2, minmax(0, 1fr)); }}
.twin-charts.cols-4 {{ grid-template-columns: repeat(4, minmax(0, 1fr)); }}
.twin-chart {{ background: {SURFACE}; border: 1px solid {GRID}; border-radius: 10px; overflow: hidden; }}
.twin-chart .bqplot {{ background: {SURFACE}; }}
.twin-chart .bqplot .axis text, .twin-chart .bqplot .axislabel {{ fill: {MUTED} !important; font-size: 11px; }}
.twin-chart .bqplot .axis path, .twin-chart .bqplot .axis line {{ stroke: {GRID} !important; }}
.twin-chart .bqplot .mainheading {{ fill: {TEAL} !important; font-size: 13px !important; font-weight: 600; }}
.twin-legend {{ padding: 0 10px 6px 50px; font-size: 11px; color: {MUTED}; }}
.twin-legend .lim {{ margin-right: 12px; white-space: nowrap; }}
.twin-legend .lim i {{ display: inline-block; width: 16px; height: 0; margin-right: 4px; vertical-align: middle; }}
.twin-legend .lim.warning i {{ border-top: 2px dashed {WARNING}; }}
.twin-legend .lim.critical i {{ border-top: 2px dotted {CRITICAL}; }}

/* lower row: table + alarms */
.twin-lower {{ display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 10px; }}
.twin-panel {{ background: {SURFACE}; border: 1px solid {GRID}; border-radius: 10px; padding: 8px 12px;
  box-sizing: border-box; overflow: hidden; }}
.twin-panel h3 {{ margin: 0 0 4px 0; font-size: 13px; color: {TEAL}; font-weight: 600; }}
.twin-panel h3 .count {{ color: {MUTED}; font-weight: 500; margin-left: 6px; }}
.twin-table .scroll {{ overflow-x: auto; }}
/* a kind with many signals: the readings table takes the whole row, the alarms go below it */
.twin-lower:has(.twin-table.wide) {{ grid-template-columns: minmax(0, 1fr); }}
.twin-table.wide table {{ font-size: 11.5px; }}
.twin-table.wide th, .twin-table.wide td {{ padding: 3px 5px; white-space: nowrap; }}
.twin-table table {{ width: 100%; border-collapse: collapse; font-size: 12.5px; font-variant-numeric: tabular-nums; }}
.twin-table th {{ text-align: right; color: {MUTED}; font-weight: 600; padding: 3px 8px; border-bottom: 1px solid {GRID}; white-space: nowrap; }}
.twin-table td {{ text-align: right; padding: 3px 8px; border-bottom: 1px solid {GRID}; color: {TEXT}; height: 18px; white-space: nowrap; }}
.twin-table th:first-child, .twin-table td:first-child, .twin-table th:nth-child(2), .twin-table td:nth-child(2) {{ text-align: left; }}
.twin-table td.over {{ color: {CRITICAL}; font-weight: 700; }}
.twin-alarms .empty {{ color: {MUTED}; font-size: 12px; padding: 6px 0; }}
.twin-alarm {{ align-items: center; gap: 8px; border-bottom: 1px solid {GRID}; padding: 2px 0; }}
.twin-alarm .widget-html {{ flex: 1 1 0; min-width: 0; overflow: hidden; }}
.twin-alarm .widget-html-content {{ display: block; min-width: 0; overflow: hidden; }}
.twin-alarm .text {{ font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
.twin-alarm .sev {{ display: inline-block; font-size: 10px; font-weight: 700; padding: 1px 6px; border-radius: 4px;
  margin-right: 6px; text-transform: uppercase; }}
.twin-alarm .sev.critical {{ background: {CRITICAL}; color: white; }}
.twin-alarm .sev.warning {{ background: {WARNING}; color: {BACKGROUND}; }}
.twin-alarm .acked {{ color: {MUTED}; }}
.twin-dashboard .twin-ack {{ height: 24px; width: 64px; font-size: 11px; flex: 0 0 auto; color: {CYAN};
  border-color: {CYAN}; }}
.twin-alarms .more {{ color: {MUTED}; font-size: 11px; padding-top: 3px; }}
.twin-message {{ color: {WARNING}; font-size: 13px; }}

/* narrower screens: fewer columns; the page scrolls */
@media (max-width: 1100px) {{
  .twin-cards, .twin-cards.cols-5 {{ grid-template-columns: repeat(2, minmax(0, 1fr)); }}
  .twin-charts, .twin-charts.cols-2, .twin-charts.cols-4 {{ grid-template-columns: minmax(0, 1fr); }}
  .twin-chart .bqplot {{ height: 230px !important; }}
  .twin-lower {{ grid-template-columns: minmax(0, 1fr); }}
  .twin-spacer {{ display: none; }}
}}
/* phones: tighter padding, smaller values, the alarm text may wrap beside its Ack button */
@media (max-width: 600px) {{
  .twin-dashboard {{ padding: 8px 8px 16px 8px; gap: 8px; }}
  .twin-title h1 {{ font-size: 19px; }}
  .twin-card {{ padding: 8px 10px; min-height: 92px; }}
  .twin-card .value {{ font-size: 24px; line-height: 30px; }}
  .twin-status .value {{ font-size: 18px; }}
  .twin-card .foot svg:not(.twin-icon) {{ display: none; }}
  .twin-fleet {{ grid-template-columns: minmax(0, 1fr); }}
  .twin-alarm .text {{ white-space: normal; }}
  .twin-range {{ justify-content: flex-start; }}
}}
/* short screens: the charts keep a readable height, the page scrolls to the rest */
@media (max-height: 700px) and (min-width: 1101px) {{
  .twin-chart .bqplot {{ height: 200px !important; }}
}}
@media (min-height: 1000px) {{
  .twin-card {{ min-height: 124px; }}
}}
</style>
"""
