"""The fleet overview: one tile per asset with its status, newest values and forecast; click to select."""

from __future__ import annotations

import ipywidgets as widgets
from traitlets import List, Unicode, observe

from twinlib.dashboard import theme

__all__ = ["FleetOverview", "AssetTile"]

LEVELS = ("ok", "warning", "critical", "stale", "unknown")
_ICONS = {"ok": "●", "warning": "▲", "critical": "■", "stale": "○", "unknown": "○"}
_WORDS = {"ok": "Normal", "warning": "Warning", "critical": "Critical", "stale": "Stale",
          "unknown": "Unknown"}


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
            headline = f"{_ICONS[level]} {self.asset_id} · {_WORDS[level]}"
            self.description = headline if compact else f"{headline}\n{values}\n{forecast}"
            self.tooltip = f"{self.asset_id}: {_WORDS[level]}. {values}. {forecast}"


class FleetOverview(widgets.Box):
    """Tiles for every asset; `selected` holds the asset shown in detail."""

    selected = Unicode("")
    assets = List()      # [{asset_id, level, values, forecast}]

    def __init__(self, **kwargs):
        self.tiles: dict[str, AssetTile] = {}
        super().__init__(**kwargs)
        self.add_class("twin-fleet")

    def _on_tile_click(self, tile: AssetTile) -> None:
        self.selected = tile.asset_id

    @observe("assets", "selected")
    def _on_assets_change(self, change) -> None:
        ids = [a["asset_id"] for a in self.assets]
        if ids != list(self.tiles):
            tiles = {}
            for asset_id in ids:
                tile = self.tiles.get(asset_id) or AssetTile(asset_id)
                if asset_id not in self.tiles:
                    tile.on_click(self._on_tile_click)
                tiles[asset_id] = tile
            self.tiles = tiles
            self.children = list(tiles.values())
        compact = len(self.assets) > theme.FLEET_FULL_TILES
        (self.add_class if compact else self.remove_class)("compact")
        for info in self.assets:
            self.tiles[info["asset_id"]].show(info.get("level", "unknown"), info.get("values", ""),
                                              info.get("forecast", ""),
                                              info["asset_id"] == self.selected, compact)
