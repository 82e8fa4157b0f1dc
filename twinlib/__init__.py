"""twinlib — a digital twin for monitoring a fleet of pumps and motors.

Data flows one way. *Sources* (``twinlib.simulate`` live, replays of recordings, CSV files,
HTTP POST, MQTT) pass through one validation path (``twinlib.ingest``) into the *store*
(``twinlib.store``, SQLite by default). *Detection* (``twinlib.detect``) reads what is new in the
store and keeps alarms; *models* (``twinlib.models``) learn fault kinds and forecast time to
failure. The Flask API (``twinlib.api``), the Voilà dashboard (``twinlib.dashboard``) and the
notebooks only read the store (acknowledging an alarm is their one write). ``twinlib.config``
decides settings and paths; ``twin`` (``twinlib.cli``) wires it all together.
"""
__version__ = "0.1.0"
__all__ = ["__version__"]
