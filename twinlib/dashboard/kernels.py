"""A cap on the dashboard's kernels: each page view starts one (~100 MB), and Voilà has no limit.

:class:`CappedKernelManager` is Voilà's kernel manager (``AsyncMappingKernelManager``) with one
rule: when ``max_kernels`` kernels run (or are starting), the next page view gets a 503 page that
says the dashboard is full and to close another tab or retry in a few minutes (idle kernels of
closed tabs are culled: ``notebooks/voila.json``), instead of one more kernel. ``twin dashboard``
selects it on Voilà's command line with the cap from settings
(``TWIN_DASHBOARD_MAX_KERNELS`` / ``[dashboard] max_kernels`` / ``--max-kernels``; 0 = no cap);
``notebooks/voila.json`` names it too, so a plain ``voila notebooks/dashboard.ipynb`` is capped.
"""
from __future__ import annotations

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.web import HTTPError
from traitlets import Integer, default

__all__ = ["CappedKernelManager", "FULL_MESSAGE"]

#: The page's heading (Voilà's error page shows the status line's reason, nothing else).
FULL_MESSAGE = ("Dashboard full: it is open in {n} tabs already, the limit on this server. Close "
                "a dashboard tab you no longer use, or try again in a few minutes")


class CappedKernelManager(AsyncMappingKernelManager):
    """``AsyncMappingKernelManager`` that refuses (503) to start more than ``max_kernels``."""

    max_kernels = Integer(config=True, help="Most kernels running at once (0: no limit).")

    @default("max_kernels")
    def _default_max_kernels(self) -> int:
        from twinlib.config import get_settings

        return get_settings().dashboard_max_kernels

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._starting = 0

    def running(self) -> int:
        """Kernels running or being started now."""
        return len(self.list_kernel_ids()) + self._starting

    async def start_kernel(self, **kwargs):
        if self.max_kernels > 0 and self.running() >= self.max_kernels:
            self.log.warning("kernel limit reached (%d): page view refused", self.max_kernels)
            message = FULL_MESSAGE.format(n=self.max_kernels)
            raise HTTPError(503, message, reason=message)
        self._starting += 1  # counted at once: page views arriving together cannot overshoot
        try:
            return await super().start_kernel(**kwargs)
        finally:
            self._starting -= 1
