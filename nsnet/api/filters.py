"""Docker's ``filters`` query parameter, as ``GET /networks``, ``GET /containers/json`` and
``POST /networks/prune`` read it.

The parameter is JSON: ``{"name": {"web": true}}`` (what clients send today) or the older
``{"name": ["web"]}``. Within one key the values are alternatives, except ``label``, whose
values must all hold; different keys must all hold. ``name`` and ``id`` match as Docker does: an
equal string, else an unanchored regular expression.
"""

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

from nsnet.errors import InvalidArgument
from nsnet.models import Container, Network

NETWORK_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")
PRUNE_FILTERS = ("label", "label!", "until")
CONTAINER_FILTERS = ("exited", "id", "label", "name", "network", "status")
# Docker's other container filters, about images, volumes, health and swarm tasks.
DOCKER_ONLY_CONTAINER_FILTERS = (
    "ancestor", "before", "expose", "health", "isolation", "is-task", "publish", "since",
    "volume",
)  # fmt: skip
CONTAINER_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
# Go's duration units, as `until=24h` or `until=1h30m` is written.
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_filters(text: str | None) -> dict[str, list[str]]:
    """The ``filters`` parameter as {key: [values]}; InvalidArgument when it is malformed."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError as error:
        raise InvalidArgument(f"invalid filters '{text}': {error}") from error
    if not isinstance(data, dict):
        raise InvalidArgument(f"invalid filters '{text}': not a JSON object")

    filters: dict[str, list[str]] = {}
    for key, values in data.items():
        if isinstance(values, dict) and all(isinstance(value, bool) for value in values.values()):
            filters[key] = [value for value, wanted in values.items() if wanted]
        elif isinstance(values, list) and all(isinstance(value, str) for value in values):
            filters[key] = list(values)
        else:
            raise InvalidArgument(
                f"invalid filters '{text}': the values of '{key}' are neither a list of"
                " strings nor a map of strings to booleans"
            )
    return filters


def validate_network_filters(filters: dict[str, list[str]]) -> None:
    """Refuse keys and values that Docker refuses for networks."""
    for key in filters:
        if key not in NETWORK_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
    for value in filters.get("type", []):
        if value not in ("custom", "builtin"):
            raise InvalidArgument(f"invalid filter: 'type'='{value}'")
    for value in filters.get("dangling", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={value}'")


def matches_pattern(values: list[str], text: str) -> bool:
    """Docker's ``Match``: one of ``values`` equals ``text`` or finds it as a regexp."""
    for value in values:
        if value == text:
            return True
        try:
            if re.search(value, text):
                return True
        except re.error:
            continue
    return False


def matches_labels(values: list[str], labels: dict[str, str]) -> bool:
    """Docker's ``MatchKVList``: every ``key`` or ``key=value`` in ``values`` holds."""
    for value in values:
        key, has_value, wanted = value.partition("=")
        if key not in labels:
            return False
        if has_value and labels[key] != wanted:
            return False
    return True


def network_matches(
    network: Network, filters: dict[str, list[str]], endpoint_count: int = 0
) -> bool:
    """Whether a network passes every filter (``endpoint_count`` serves ``dangling``)."""
    if "driver" in filters and network.driver not in filters["driver"]:
        return False
    if "name" in filters and not matches_pattern(filters["name"], network.name):
        return False
    if "id" in filters and not matches_pattern(filters["id"], network.id):
        return False
    if "label" in filters and not matches_labels(filters["label"], network.labels):
        return False
    if "scope" in filters and network.scope not in filters["scope"]:
        return False
    if "type" in filters:
        kind = "builtin" if network.builtin else "custom"
        if kind not in filters["type"]:
            return False
    if "dangling" in filters:
        # A dangling network is a user network without endpoints (what prune would remove).
        dangling = not network.builtin and endpoint_count == 0
        wanted = {value.lower() in ("true", "1") for value in filters["dangling"]}
        if dangling not in wanted:
            return False
    return True


def filter_networks(
    networks: list[Network],
    filters: dict[str, list[str]],
    endpoint_counts: dict[str, int] | None = None,
) -> list[Network]:
    """The networks that pass ``filters``, in their order."""
    validate_network_filters(filters)
    counts = endpoint_counts or {}
    return [
        network
        for network in networks
        if network_matches(network, filters, counts.get(network.id, 0))
    ]


def prune_predicate(filters: dict[str, list[str]]) -> Callable[[Network], bool]:
    """Which unused networks ``network prune`` removes under ``filters``, as Docker decides.

    ``until`` (one value: a Go duration before now, a Unix timestamp or an RFC 3339 date) keeps
    networks created after it; ``label`` removes only networks with every label given, and
    ``label!`` keeps those that have all of its labels.
    """
    for key in filters:
        if key not in PRUNE_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
    until = None
    if filters.get("until"):
        if len(filters["until"]) > 1:
            raise InvalidArgument("more than one until filter specified")
        until = timestamp(filters["until"][0])
    labels, not_labels = filters.get("label", []), filters.get("label!", [])

    def prunable(network: Network) -> bool:
        if until is not None and created_seconds(network) > until:
            return False
        if not matches_labels(labels, network.labels):
            return False
        return not (not_labels and matches_labels(not_labels, network.labels))

    return prunable


def timestamp(text: str, now: float | None = None) -> float:
    """Seconds since the epoch for an ``until`` value, read as Docker reads it.

    A Go duration (``10m``, ``1h30m``) counts back from ``now``; a number is a Unix timestamp;
    anything else must be an RFC 3339 date or date and time (without a zone: local time).
    """
    now = time.time() if now is None else now
    parts = DURATION.findall(text)
    if parts and "".join(number + unit for number, unit in parts) == text:
        return now - sum(float(number) * DURATION_UNITS[unit] for number, unit in parts)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise InvalidArgument(
            f"invalid filter 'until={text}': not a duration (24h), a Unix timestamp or an "
            "RFC 3339 date"
        ) from error
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as Docker takes a date without a zone
    return moment.timestamp()


def created_seconds(network: Network) -> float:
    """When a network was made, in seconds since the epoch (its ``Created`` in RFC 3339)."""
    text = network.created.rstrip("Z")
    whole, _, fraction = text.partition(".")
    try:
        moment = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    except ValueError:
        return 0.0  # no readable time: as old as can be
    return moment.timestamp() + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)


def container_predicate(
    filters: dict[str, list[str]],
) -> Callable[[Container, list[str]], bool]:
    """Which containers ``ps`` lists under ``filters``, given each one's networks (names and ids).

    As Docker: ``id`` and ``name`` match an equal string or a regular expression (a name with
    or without its leading "/"), ``label`` every label given, ``status`` and ``exited`` (an
    exit code, of exited containers) and ``network`` one of their values.
    """
    for key in filters:
        if key in DOCKER_ONLY_CONTAINER_FILTERS:
            raise InvalidArgument(f"filter '{key}' is not supported: nsnet has no {key} data")
        if key not in CONTAINER_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
    for value in filters.get("status", []):
        if value not in CONTAINER_STATUSES:
            raise InvalidArgument(f"Unrecognised filter value for status: {value}")
    exit_codes = set()
    for value in filters.get("exited", []):
        try:
            exit_codes.add(int(value))
        except ValueError as error:
            raise InvalidArgument(f"invalid filter 'exited={value}'") from error

    def listed(container: Container, networks: list[str]) -> bool:
        if "id" in filters and not matches_pattern(filters["id"], container.id):
            return False
        if "name" in filters and not (
            matches_pattern(filters["name"], container.name)
            or matches_pattern(filters["name"], "/" + container.name)
        ):
            return False
        if "label" in filters and not matches_labels(filters["label"], container.labels):
            return False
        if "status" in filters and container.state not in filters["status"]:
            return False
        if exit_codes and (container.state != "exited" or container.exit_code not in exit_codes):
            return False
        return "network" not in filters or any(
            matches_pattern(filters["network"], network) for network in networks
        )

    return listed
