"""The table (medians, p90, anchors, ratios), the targets of issue 6, and the JSON file.

Each row compares one nsnet measurement with the like-for-like measurement on each anchor.
A cell is a median, "n/a [k]" (could not be measured here: footnote k says why), "FAILED [k]"
(broke: footnote k has the error) or "—" (the system has no such operation). The ratio is
anchor / nsnet: above 1 nsnet takes less time (or memory) than the anchor; for Gbit/s and
answers/s, where more is better, below 1 nsnet is ahead.
"""

import json
from dataclasses import dataclass, field

from bench.stages import DNS_WINDOW, Profile
from bench.stats import Measurement, Results
from bench.subject import API, CLI, ENGINE, PLUGIN

ANCHORS = ("CNI", "Docker")


@dataclass(frozen=True)
class Cell:
    subject: str
    interface: str
    case: str


@dataclass
class Row:
    label: str
    stage: str
    unit: str
    nsnet: Cell
    anchors: dict[str, Cell] = field(default_factory=dict)


def _row(label, stage, unit, nsnet, cni=None, docker=None) -> Row:
    anchors = {}
    if cni:
        anchors["CNI"] = Cell(*cni)
    if docker:
        anchors["Docker"] = Cell(*docker)
    return Row(label, stage, unit, Cell(*nsnet), anchors)


def rows(profile: Profile) -> list[Row]:
    """The table's rows for a profile (its endpoint and port counts name some rows)."""
    ports = profile.published_ports
    table = []

    for action in ("attach", "detach"):
        table.append(
            _row(
                f"{action} (API; CNI: plugin exec)",
                "operations",
                "ms",
                ("nsnet", API, action),
                ("cni", PLUGIN, action),
                ("docker", API, action),
            )
        )
    for action in ("attach", "detach"):
        table.append(
            _row(
                f"{action} (CLI)",
                "operations",
                "ms",
                ("nsnet", CLI, action),
                docker=("docker", CLI, action),
            )
        )
    for action in ("attach", "detach"):
        table.append(
            _row(
                f"{action} (engine call; anchors: API)",
                "operations",
                "ms",
                ("engine", ENGINE, action),
                ("cni", PLUGIN, action),
                ("docker", API, action),
            )
        )

    for interface, label in ((API, "API"), (CLI, "CLI"), (ENGINE, "engine call")):
        subject = "engine" if interface == ENGINE else "nsnet"
        docker_interface = CLI if interface == CLI else API
        for case, action in (("network.create", "create"), ("network.remove", "rm")):
            table.append(
                _row(
                    f"network {action} ({label})",
                    "operations",
                    "ms",
                    (subject, interface, case),
                    docker=("docker", docker_interface, case),
                )
            )

    for subject, interface, label in (("nsnet", API, "API"), ("engine", ENGINE, "engine call")):
        table.append(
            _row(
                f"container create, 1 port ({label})",
                "operations",
                "ms",
                (subject, interface, "container.create"),
                ("cni", PLUGIN, "container.create"),
                ("docker", API, "container.run"),
            )
        )
        table.append(
            _row(
                f"container rm ({label})",
                "operations",
                "ms",
                (subject, interface, "container.create.remove"),
                ("cni", PLUGIN, "container.create.remove"),
                ("docker", API, "container.run.remove"),
            )
        )
    table.append(
        _row(
            "container run (create + start), 1 port (API)",
            "operations",
            "ms",
            ("nsnet", API, "container.run"),
            docker=("docker", API, "container.run"),
        )
    )
    table.append(
        _row(
            "container rm -f after run (API)",
            "operations",
            "ms",
            ("nsnet", API, "container.run.remove"),
            docker=("docker", API, "container.run.remove"),
        )
    )

    for subject, interface, label in (("nsnet", API, "API"), ("engine", ENGINE, "engine call")):
        for count in profile.endpoint_counts:
            for action in ("attach", "detach"):
                table.append(
                    _row(
                        f"{action}, {count:,} existing endpoint{'' if count == 1 else 's'} "
                        f"({label})",
                        "scale",
                        "ms",
                        (subject, interface, f"{action}.at{count}"),
                        ("cni", PLUGIN, f"{action}.at{count}"),
                        ("docker", API, f"{action}.at{count}"),
                    )
                )

    for subject, interface, label in (("nsnet", API, "API"), ("engine", ENGINE, "engine call")):
        for case, action in (
            ("port.create", "container create with 1 port"),
            ("port.remove", "its rm"),
            ("port.none.create", "container create, no port"),
            ("port.none.remove", "its rm"),
            ("port.share.create", "publish: create with − without port"),
            ("port.share.remove", "unpublish: rm with − without port"),
        ):
            table.append(
                _row(
                    f"{action}, {ports:,} ports published ({label})",
                    "ports",
                    "ms",
                    (subject, interface, case),
                    ("cni", PLUGIN, case),
                    ("docker", API, case),
                )
            )
    table.append(
        _row(
            f"publish {ports:,} ports on one container, once (API)",
            "ports",
            "ms",
            ("nsnet", API, "ports.publish_all"),
            ("cni", PLUGIN, "ports.publish_all"),
            ("docker", API, "ports.publish_all"),
        )
    )
    for case, label in (
        ("tcp.connect.first", f"TCP connect via published port 1 of {ports:,}"),
        ("tcp.connect.last", f"TCP connect via published port {ports:,} of {ports:,}"),
        ("tcp.connect.direct", "TCP connect to the container's address"),
    ):
        table.append(
            _row(
                label,
                "ports",
                "ms",
                ("nsnet", API, case),
                ("cni", PLUGIN, case),
                ("docker", API, case),
            )
        )
    for case, label in (
        ("throughput.localhost", "iperf3 via published port from 127.0.0.1"),
        ("throughput.outside", "iperf3 via published port from outside"),
        ("throughput.direct", "iperf3 to the container's address"),
    ):
        table.append(
            _row(
                label,
                "ports",
                "Gbit/s",
                ("nsnet", API, case),
                ("cni", PLUGIN, case),
                ("docker", API, case),
            )
        )

    table.append(
        _row(
            f"DNS answers per second ({DNS_WINDOW} queries in flight)",
            "dns",
            "answers/s",
            ("nsnet", API, "dns.rate"),
            docker=("docker", API, "dns.rate"),
        )
    )
    table.append(
        _row(
            "DNS queries lost or failed per run of the rate above",
            "dns",
            "count",
            ("nsnet", API, "dns.lost"),
            docker=("docker", API, "dns.lost"),
        )
    )
    table.append(
        _row(
            "DNS query latency (1 in flight)",
            "dns",
            "ms",
            ("nsnet", API, "dns.latency"),
            docker=("docker", API, "dns.latency"),
        )
    )

    for count in profile.endpoint_counts:
        for case, label, unit in (
            ("memory.daemon", "daemon RSS", "MiB"),
            ("memory.total", "RSS of all daemon processes", "MiB"),
            ("processes", "daemon processes", "count"),
        ):
            table.append(
                _row(
                    f"{label}, {count:,} container{'' if count == 1 else 's'}",
                    "scale",
                    unit,
                    ("nsnet", API, f"{case}.at{count}"),
                    docker=("docker", API, f"{case}.at{count}"),
                )
            )
    return table


# Cells


@dataclass
class Value:
    """What one cell shows, and the measurement behind it."""

    state: str  # value | unavailable | error | none
    measurement: Measurement | None = None
    reason: str = ""

    @property
    def median(self) -> float | None:
        return self.measurement.median if self.measurement and self.state == "value" else None


def lookup(results: Results, stage: str, cell: Cell) -> Value:
    measurement = results.find(cell.case, cell.subject, cell.interface)
    if measurement is not None:
        if measurement.error:
            return Value("error", measurement, measurement.error)
        if measurement.unavailable:
            return Value("unavailable", measurement, measurement.unavailable)
        if measurement.samples:
            return Value("value", measurement)
        return Value("error", measurement, "no samples were taken")
    problem = results.stage_problems.get((stage, cell.subject))
    if problem:
        kind, message = problem
        return Value("unavailable" if kind == "unavailable" else "error", None, message)
    return Value("none")


def number(value: float | None, unit: str = "") -> str:
    """Three significant figures, without exponent notation; counts as integers."""
    if value is None:
        return ""
    if unit == "count":
        return f"{value:,.0f}"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


class Footnotes:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def mark(self, reason: str) -> int:
        if reason not in self.reasons:
            self.reasons.append(reason)
        return self.reasons.index(reason) + 1


def cell_text(value: Value, footnotes: Footnotes, unit: str) -> str:
    if value.state == "value":
        return number(value.median, unit)
    if value.state == "none":
        return "—"
    label = "n/a" if value.state == "unavailable" else "FAILED"
    return f"{label} [{footnotes.mark(value.reason)}]"


def ratio(anchor: Value, nsnet: Value) -> float | None:
    # A difference of times (the port's share) can be zero or negative: no ratio then.
    if anchor.median is None or nsnet.median is None or anchor.median <= 0 or nsnet.median <= 0:
        return None
    return anchor.median / nsnet.median


def table_records(results: Results, profile: Profile) -> list[dict]:
    """Every row with its cells' figures, for the JSON file and the table."""
    records = []
    for row in rows(profile):
        nsnet = lookup(results, row.stage, row.nsnet)
        record = {
            "operation": row.label,
            "stage": row.stage,
            "unit": row.unit,
            "nsnet": _cell_record(row.nsnet, nsnet),
            "anchors": {},
        }
        for column in ANCHORS:
            cell = row.anchors.get(column)
            value = lookup(results, row.stage, cell) if cell else Value("none")
            record["anchors"][column] = {
                **_cell_record(cell, value),
                "ratio_anchor_to_nsnet": ratio(value, nsnet),
            }
        records.append(record)
    return records


def _cell_record(cell: Cell | None, value: Value) -> dict:
    measurement = value.measurement
    return {
        "source": None if cell is None else f"{cell.subject}/{cell.interface}/{cell.case}",
        "state": value.state,
        "median": value.median,
        "p90": measurement.p90 if measurement and value.state == "value" else None,
        "count": len(measurement.samples) if measurement else 0,
        "reason": value.reason or None,
    }


def render_table(results: Results, profile: Profile) -> str:
    """The table as plain text, with footnotes."""
    footnotes = Footnotes()
    header = ["operation", "unit", "nsnet", "p90"]
    for column in ANCHORS:
        header += [column, f"{column}/nsnet"]
    lines = [header]
    for row in rows(profile):
        nsnet = lookup(results, row.stage, row.nsnet)
        line = [row.label, row.unit, cell_text(nsnet, footnotes, row.unit)]
        repeated = nsnet.state == "value" and len(nsnet.measurement.samples) > 1
        line.append(number(nsnet.measurement.p90, row.unit) if repeated else "")
        for column in ANCHORS:
            cell = row.anchors.get(column)
            value = lookup(results, row.stage, cell) if cell else Value("none")
            line.append(cell_text(value, footnotes, row.unit))
            shown = ratio(value, nsnet)
            line.append(f"{shown:.2f}×" if shown is not None else "")
        lines.append(line)

    widths = [max(len(line[index]) for line in lines) for index in range(len(header))]
    text = []
    for number_of_line, line in enumerate(lines):
        cells = [line[0].ljust(widths[0]), line[1].ljust(widths[1])]
        cells += [value.rjust(width) for value, width in zip(line[2:], widths[2:], strict=True)]
        text.append("  ".join(cells).rstrip())
        if number_of_line == 0:
            text.append("  ".join("-" * width for width in widths))
    if footnotes.reasons:
        text.append("")
        for index, reason in enumerate(footnotes.reasons, start=1):
            text.append(f"[{index}] {reason}")
    return "\n".join(text)


# Issue 6's targets, read from the medians (reported, never asserted)


def targets(results: Results, profile: Profile) -> list[dict]:
    """Each target of issue 6 with the measured figure, where both sides of it exist."""

    def median(subject: str, interface: str, case: str) -> float | None:
        measurement = results.find(case, subject, interface)
        if measurement is None or measurement.error or measurement.unavailable:
            return None
        return measurement.median

    low, high = min(profile.endpoint_counts), max(profile.endpoint_counts)
    found = []

    def add(name: str, figure: float | None, goal: str, met: bool | None, unit: str) -> None:
        found.append({"target": name, "goal": goal, "measured": figure, "unit": unit, "met": met})

    for action in ("attach", "detach"):
        figure = median("engine", ENGINE, action)
        add(
            f"{action} as an engine call",
            figure,
            "≤ 5 ms",
            None if figure is None else figure <= 5,
            "ms",
        )
    for subject, interface in (("engine", ENGINE), ("nsnet", API)):
        for action in ("attach", "detach"):
            first = median(subject, interface, f"{action}.at{low}")
            last = median(subject, interface, f"{action}.at{high}")
            growth = last / first if first and last is not None else None
            add(
                f"{action} growth {low:,} → {high:,} endpoints ({interface})",
                growth,
                "≤ 1.5×",
                None if growth is None else growth <= 1.5,
                "×",
            )
    for case, action in (("port.share.create", "publish"), ("port.share.remove", "unpublish")):
        figure = median("engine", ENGINE, case)
        add(
            f"{action} 1 port with {profile.published_ports:,} present (engine call; median of "
            "paired differences with and without the port)",
            figure,
            "≤ 5 ms",
            None if figure is None else figure <= 5,
            "ms",
        )
    first = median("nsnet", API, "tcp.connect.first")
    last = median("nsnet", API, "tcp.connect.last")
    spread = last / first if first and last is not None else None
    add(
        f"connect latency, port {profile.published_ports:,} / port 1",
        spread,
        "≤ 1.10×",
        None if spread is None else spread <= 1.10,
        "×",
    )
    local = median("nsnet", API, "throughput.localhost")
    direct = median("nsnet", API, "throughput.direct")
    share = local / direct if local is not None and direct else None
    add(
        "throughput via published port from 127.0.0.1 / direct",
        share,
        "≥ 0.90",
        None if share is None else share >= 0.90,
        "×",
    )
    return found


def render_targets(found: list[dict]) -> str:
    lines = ["issue 6 targets (medians of this run; not asserted):"]
    for entry in found:
        figure = entry["measured"]
        shown = "not measured" if figure is None else f"{number(figure)} {entry['unit']}"
        verdict = "" if entry["met"] is None else ("met" if entry["met"] else "NOT met")
        lines.append(f"  {entry['target']}: {shown} (goal {entry['goal']}) {verdict}".rstrip())
    return "\n".join(lines)


def write_json(path, document: dict) -> None:
    with open(path, "w") as handle:
        json.dump(document, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
