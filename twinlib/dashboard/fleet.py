"""The fleet overview: one tile per asset with its status, newest values and forecast; click to select.

A tile's level is the page's one status (`DashboardState.level_of`: the alarms while a monitor
runs, ``nodetect`` otherwise); its status mark is drawn by CSS (a coloured shape before the text),
so it needs no emoji or icon font.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
from traitlets import List, Unicode, observe

from twinlib.dashboard import theme
from twinlib.dashboard.status import LEVEL_WORDS

__all__ = ["FleetOverview", "AssetTile"]

LEVELS = ("ok", "warning", "critical", "stale", "unknown", "nodetect")
_WORDS = {**LEVEL_WORDS, "nodetect": "no detection"}


class AssetTile(widgets.Button):
    """A clickable tile for one asset (a Button whose three text lines CSS breaks apart)."""

    asset_id = Unicode()
    level = Unicode("unknown")

    def __init__(self, asset_id: str, **kwargs):
        super().__init__(asset_id=asset_id, **kwargs)
        self.add_class("twin-asset")
        self.add_class(f"twin-asset-{asset_id}")

    def show(self, level: str, values: str, forecast: str, selected: bool, compact: bool = False) -> None:
        """Set the tile's text and colour classes."""
        level = level if level in LEVELS else "unknown"
        with self.hold_sync():
            for other in LEVELS:
                if other != level:
                    self.remove_class(other)
            self.add_class(level)
            (self.add_class if selected else self.remove_class)("selected")
            self.level = level
            headline = f"{self.asset_id} · {_WORDS[level]}"
            self.description = headline if compact else f"{headline}\n{values}\n{forecast}"
            word = LEVEL_WORDS[level]
            self.tooltip = f"{self.asset_id}: {word}. {values}. {forecast}"


class FleetOverview(widgets.Box):
    """Tiles for every asset, grouped under a heading per location when any asset has one
    (`plant-1/line-2`; assets without one last, under "no location"); `selected` holds the asset
    shown in detail."""

    selected = Unicode("")
    assets = List()      # [{asset_id, level, values, forecast, location}]

    NO_LOCATION = "no location"

    def __init__(self, **kwargs):
        self.tiles: dict[str, AssetTile] = {}
        self.headings: dict[str, widgets.HTML] = {}
        self._layout_key: tuple = ()
        super().__init__(**kwargs)
        self.add_class("twin-fleet")

    def _on_tile_click(self, tile: AssetTile) -> None:
        self.selected = tile.asset_id

    def groups(self) -> list[tuple[str | None, list[str]]]:
        """(location, asset ids) in the order shown: locations sorted, then assets without one."""
        by_location: dict[str | None, list[str]] = {}
        for info in self.assets:
            by_location.setdefault(info.get("location") or None, []).append(info["asset_id"])
        located = sorted(k for k in by_location if k is not None)
        return [(k, by_location[k]) for k in located] + \
            ([(None, by_location[None])] if None in by_location else [])

    @observe("assets", "selected")
    def _on_assets_change(self, change) -> None:
        groups = self.groups()
        key = tuple((loc, tuple(ids)) for loc, ids in groups)
        if key != self._layout_key:
            self._layout_key = key
            tiles, headings, children = {}, {}, []
            labelled = any(loc is not None for loc, _ in groups)
            for location, ids in groups:
                if labelled:
                    name = location or self.NO_LOCATION
                    heading = self.headings.get(name) or widgets.HTML()
                    heading.value = html.escape(name)
                    heading.add_class("twin-location")
                    headings[name] = heading
                    children.append(heading)
                for asset_id in ids:
                    tile = self.tiles.get(asset_id)
                    if tile is None:
                        tile = AssetTile(asset_id)
                        tile.on_click(self._on_tile_click)
                    tiles[asset_id] = tile
                    children.append(tile)
            self.tiles, self.headings = tiles, headings
            self.children = children
        compact = len(self.assets) > theme.FLEET_FULL_TILES
        (self.add_class if compact else self.remove_class)("compact")
        for info in self.assets:
            self.tiles[info["asset_id"]].show(info.get("level", "unknown"), info.get("values", ""),
                                              info.get("forecast", ""),
                                              info["asset_id"] == self.selected, compact)
