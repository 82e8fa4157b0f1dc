"""Workflows: the steps that run several wings in order, for the notebooks and the command line.

This package stands above the wings (store, ingest, models, detect): it may import any of them,
and none of them imports it.

* :mod:`~twinlib.workflows.pipeline` — one call per step (simulate and load history, train,
  evaluate, explore an asset), each taking paths and returning a JSON-ready summary, so a
  notebook stays a list of calls and ``twin train`` / ``twin evaluate`` do the very same work.
* :mod:`~twinlib.workflows.notebooks` — runs ``notebooks/01…04`` with papermill
  (``twin notebooks run``), by default on their own database and models under the reports dir.
* :mod:`~twinlib.workflows.figures` — the report figures, drawn headless (matplotlib Agg).

Nothing is imported eagerly: ``import twinlib.workflows`` pulls neither papermill nor matplotlib.
"""
