"""nsnet.api.filters: Docker's ``filters`` parameter for ``GET /networks`` and for prune."""

from datetime import datetime

import pytest

from nsnet.api.filters import filter_networks, parse_filters, prune_predicate, timestamp
from nsnet.errors import InvalidArgument
from nsnet.models import Network

CREATED = "2026-12-03T18:41:23.824991543Z"


def networks() -> list[Network]:
    def network(letter: str, name: str, driver: str, labels: dict | None = None) -> Network:
        return Network(
            id=letter * 64, name=name, driver=driver, created=CREATED, labels=labels or {}
        )

    return [
        network("a", "bridge", "bridge"),
        network("b", "host", "host"),
        network("c", "none", "null"),
        network("d", "front", "bridge", {"tier": "web"}),
        network("e", "back", "bridge", {"tier": "db", "x": ""}),
    ]


def names(filters: dict, counts: dict | None = None) -> list[str]:
    return [network.name for network in filter_networks(networks(), filters, counts)]


def test_both_json_forms_are_read() -> None:
    assert parse_filters('{"name": {"front": true, "back": false}}') == {"name": ["front"]}
    assert parse_filters('{"name": ["front", "back"]}') == {"name": ["front", "back"]}
    assert parse_filters("") == {} and parse_filters(None) == {}


@pytest.mark.parametrize("text", ["{bad", "[]", '{"name": "front"}', '{"name": [1]}'])
def test_malformed_filters_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid filters"):
        parse_filters(text)


def test_name_matches_exactly_or_as_an_unanchored_pattern() -> None:
    assert names({"name": ["front"]}) == ["front"]
    assert names({"name": ["o"]}) == ["host", "none", "front"]
    assert names({"name": ["^b"]}) == ["bridge", "back"]


def test_values_of_one_key_are_alternatives() -> None:
    assert names({"driver": ["host", "null"]}) == ["host", "none"]


def test_different_keys_must_all_hold() -> None:
    assert names({"driver": ["bridge"], "name": ["^b"]}) == ["bridge", "back"]
    assert names({"driver": ["bridge"], "type": ["custom"]}) == ["front", "back"]


def test_every_label_must_hold() -> None:
    assert names({"label": ["tier"]}) == ["front", "back"]
    assert names({"label": ["tier=db"]}) == ["back"]
    assert names({"label": ["tier", "x"]}) == ["back"]
    assert names({"label": ["tier=web", "x"]}) == []


def test_type_tells_builtin_from_custom() -> None:
    assert names({"type": ["builtin"]}) == ["bridge", "host", "none"]
    assert names({"type": ["custom", "builtin"]}) == ["bridge", "host", "none", "front", "back"]


def test_id_matches_a_prefix() -> None:
    assert names({"id": ["dddd"]}) == ["front"]


def test_dangling_means_a_user_network_without_endpoints() -> None:
    counts = {"d" * 64: 2}

    assert names({"dangling": ["true"]}, counts) == ["back"]
    assert names({"dangling": ["false"]}, counts) == ["bridge", "host", "none", "front"]


@pytest.mark.parametrize(
    "filters, message",
    [
        ({"colour": ["red"]}, "invalid filter 'colour'"),
        ({"type": ["weird"]}, "'type'='weird'"),
        ({"dangling": ["maybe"]}, "dangling=maybe"),
    ],
)
def test_unknown_keys_and_values_are_refused(filters: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        filter_networks(networks(), filters)


# network prune's filters: until, label, label!

NOW = datetime.fromisoformat("2026-12-03T20:41:23+00:00").timestamp()  # two hours after CREATED


def prunable(filters: dict) -> list[str]:
    keep = prune_predicate(filters)
    return [network.name for network in networks()[3:] if keep(network)]


@pytest.mark.parametrize(
    ("text", "seconds_before_now"),
    [("24h", 86400), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("250ms", 0.25)],
)
def test_until_as_a_go_duration_counts_back_from_now(text: str, seconds_before_now) -> None:
    assert timestamp(text, now=NOW) == pytest.approx(NOW - seconds_before_now)


def test_until_as_a_unix_timestamp_or_a_date() -> None:
    assert timestamp("1764794483", now=NOW) == 1764794483
    assert timestamp("1764794483.5", now=NOW) == 1764794483.5
    assert timestamp("2026-12-03T18:41:24Z", now=NOW) == NOW - 7199
    assert timestamp("2026-12-03T19:41:23+01:00", now=NOW) == NOW - 2 * 3600


def test_until_keeps_networks_created_after_it() -> None:
    assert prunable({"until": ["2026-12-03T18:41:24Z"]}) == ["front", "back"]
    assert prunable({"until": ["2026-12-03T18:41:23Z"]}) == []  # made 0.82 s after it
    assert prunable({"until": ["1h"]}) == ["front", "back"]  # from the real now: long ago


def test_label_and_negated_label_select_what_prune_removes() -> None:
    assert prunable({}) == ["front", "back"]
    assert prunable({"label": ["tier=db"]}) == ["back"]
    assert prunable({"label": ["tier"]}) == ["front", "back"]
    assert prunable({"label!": ["tier=db"]}) == ["front"]
    assert prunable({"label!": ["x"], "label": ["tier"]}) == ["front"]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"name": ["front"]}, "invalid filter 'name'"),
        ({"until": ["1h", "2h"]}, "more than one until filter specified"),
        ({"until": ["yesterday"]}, "invalid filter 'until=yesterday'"),
        ({"until": ["5x"]}, "invalid filter 'until=5x'"),
    ],
)
def test_bad_prune_filters_are_refused(filters: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        prune_predicate(filters)
