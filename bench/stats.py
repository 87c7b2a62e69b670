"""Measurements: raw samples for one case on one subject, with their median and p90.

A measurement either holds samples or says why it has none: ``unavailable`` when the case
cannot run here (a feature not there yet, a limit of the machine), ``error`` when it broke. A
figure is never made up or carried over from elsewhere.
"""

import math
from dataclasses import asdict, dataclass, field


def median(samples: list[float]) -> float:
    """The median (the mean of the two middle values for an even count)."""
    ordered = sorted(samples)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest sample with ``fraction`` of them at or below."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Measurement:
    """One case (``attach``, ``network.create`` ...) on one subject through one interface.

    ``samples`` are in ``unit`` (milliseconds for times); ``warmup`` holds the samples that
    were taken first and left out of the statistics; ``context`` records the conditions
    (existing endpoints, published ports ...).
    """

    case: str
    subject: str
    interface: str
    unit: str
    samples: list[float] = field(default_factory=list)
    warmup: list[float] = field(default_factory=list)
    unavailable: str | None = None  # why it could not be measured here (expected)
    error: str | None = None  # why the measurement failed (a bug, ours or theirs)
    note: str = ""
    context: dict = field(default_factory=dict)

    @property
    def median(self) -> float | None:
        return median(self.samples) if self.samples else None

    @property
    def p90(self) -> float | None:
        return percentile(self.samples, 0.9) if self.samples else None

    def to_json(self) -> dict:
        """The record with its statistics, for the JSON file."""
        record = asdict(self)
        record["count"] = len(self.samples)
        record["median"] = self.median
        record["p90"] = self.p90
        record["min"] = min(self.samples) if self.samples else None
        record["max"] = max(self.samples) if self.samples else None
        return record


class Results:
    """Every measurement of one run, found by (case, subject, interface)."""

    def __init__(self) -> None:
        self.measurements: list[Measurement] = []
        # (stage, subject) -> ("unavailable" | "error", message): a stage that could not start
        # or stopped early, for the cases it never reached.
        self.stage_problems: dict[tuple[str, str], tuple[str, str]] = {}

    def add(self, measurement: Measurement) -> Measurement:
        """Add (or replace) the measurement for its case, subject and interface."""
        self.measurements = [
            other
            for other in self.measurements
            if (other.case, other.subject, other.interface)
            != (measurement.case, measurement.subject, measurement.interface)
        ]
        self.measurements.append(measurement)
        return measurement

    def remove(self, measurement: Measurement) -> None:
        self.measurements = [other for other in self.measurements if other is not measurement]

    def unavailable(
        self, case: str, subject: str, interface: str, unit: str, reason: str
    ) -> Measurement:
        """Record that a case could not be measured, and why."""
        return self.add(Measurement(case, subject, interface, unit, unavailable=reason))

    def find(self, case: str, subject: str, interface: str) -> Measurement | None:
        for measurement in self.measurements:
            if (measurement.case, measurement.subject, measurement.interface) == (
                case,
                subject,
                interface,
            ):
                return measurement
        return None
