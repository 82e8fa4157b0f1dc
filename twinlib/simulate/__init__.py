"""A believable fleet of motor-driven pumps with labelled faults.

``simulate_fleet(...)`` gives a history (readings, fault ground truth, asset metadata);
``FleetSimulator(...).step(n)`` gives the same physics live, step by step. Pure functions of
their parameters and ``seed``: no I/O here.
"""
from .faults import FAULT_CLASSES, FAULT_KINDS, LABELS, PROGRESSIVE, SENSOR_FAULTS, Episode, fault_class
from .fleet import READING_FIELDS, FleetSimulator, SimulationResult, simulate_fleet
from .physics import AssetParams
from .schedule import RECOVERY_S, random_fault_schedule, simulate_random_fleet

__all__ = ["simulate_fleet", "FleetSimulator", "SimulationResult", "AssetParams", "Episode",
           "FAULT_KINDS", "FAULT_CLASSES", "LABELS", "PROGRESSIVE", "SENSOR_FAULTS",
           "READING_FIELDS", "fault_class", "RECOVERY_S", "random_fault_schedule",
           "simulate_random_fleet"]
