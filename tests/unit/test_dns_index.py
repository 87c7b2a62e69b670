"""The DNS name index: scoping by network, aliases, removal, reverse lookups, origins."""

from ipaddress import IPv4Address

import pytest

from nsnet.dns.index import NameIndex

NET_A = "a" * 64
NET_B = "b" * 64


def addresses(*texts: str) -> list[IPv4Address]:
    return [IPv4Address(text) for text in texts]


def test_a_name_resolves_on_its_network_only() -> None:
    index = NameIndex()
    index.add(NET_A, "endpoint-web", ["web"], "10.1.0.2")

    assert index.lookup([NET_A], "web") == addresses("10.1.0.2")
    assert index.lookup([NET_B], "web") == []
    assert index.lookup([NET_B, NET_A], "web") == addresses("10.1.0.2")
    assert index.lookup([], "web") == []


def test_lookup_ignores_case_and_the_trailing_dot() -> None:
    index = NameIndex()
    index.add(NET_A, "endpoint-web", ["Web"], "10.1.0.2")

    assert index.lookup([NET_A], "WEB.") == addresses("10.1.0.2")
    assert index.lookup([NET_A], "web") == addresses("10.1.0.2")


def test_an_alias_of_several_endpoints_gives_all_their_addresses() -> None:
    index = NameIndex()
    index.add(NET_A, "endpoint-1", ["one", "api"], "10.1.0.2")
    index.add(NET_A, "endpoint-2", ["two", "api"], "10.1.0.3")
    index.add(NET_B, "endpoint-3", ["three", "api"], "10.2.0.2")

    assert index.lookup([NET_A], "api") == addresses("10.1.0.2", "10.1.0.3")
    assert index.lookup([NET_A, NET_B], "api") == addresses("10.1.0.2", "10.1.0.3", "10.2.0.2")
    assert index.lookup([NET_A], "one") == addresses("10.1.0.2")


def test_removal_takes_effect_at_once_and_leaves_the_other_holders() -> None:
    index = NameIndex()
    index.add(NET_A, "endpoint-1", ["one", "api"], "10.1.0.2")
    index.add(NET_A, "endpoint-2", ["two", "api"], "10.1.0.3")

    assert index.remove("endpoint-1") is True

    assert index.lookup([NET_A], "one") == []
    assert index.lookup([NET_A], "api") == addresses("10.1.0.3")
    assert index.reverse([NET_A], "10.1.0.2") is None
    assert index.remove("endpoint-1") is False  # idempotent
    assert len(index) == 1


def test_re_adding_an_endpoint_replaces_its_names() -> None:
    index = NameIndex()
    index.add(NET_A, "endpoint-1", ["old"], "10.1.0.2")
    index.add(NET_A, "endpoint-1", ["new"], "10.1.0.9")

    assert index.lookup([NET_A], "old") == []
    assert index.lookup([NET_A], "new") == addresses("10.1.0.9")
    assert index.reverse([NET_A], "10.1.0.2") is None
    assert len(index) == 1


def test_reverse_gives_the_ptr_name_on_shared_networks() -> None:
    index = NameIndex()
    index.add(NET_A, "endpoint-web", ["web", "www"], "10.1.0.2", ptr_name="web.front")
    index.add(NET_B, "endpoint-db", ["db"], "10.2.0.2")

    assert index.reverse([NET_A], "10.1.0.2") == "web.front"
    assert index.reverse([NET_B], "10.2.0.2") == "db"
    assert index.reverse([NET_B], "10.1.0.2") is None


def test_a_container_on_two_networks_is_one_entry_per_endpoint() -> None:
    index = NameIndex()
    index.add(NET_A, "endpoint-a", ["web"], "10.1.0.2")
    index.add(NET_B, "endpoint-b", ["web"], "10.2.0.2")

    index.remove("endpoint-a")

    assert index.lookup([NET_A, NET_B], "web") == addresses("10.2.0.2")


def test_endpoints_of_another_host_join_and_leave_by_origin() -> None:
    index = NameIndex()
    index.add(NET_A, "endpoint-local", ["api"], "10.1.0.2")
    index.add(NET_A, "endpoint-remote-1", ["api"], "10.1.0.3", origin="host-2")
    index.add(NET_A, "endpoint-remote-2", ["cache"], "10.1.0.4", origin="host-2")

    assert index.lookup([NET_A], "api") == addresses("10.1.0.2", "10.1.0.3")

    assert index.remove_origin("host-2") == 2

    assert index.lookup([NET_A], "api") == addresses("10.1.0.2")
    assert index.lookup([NET_A], "cache") == []
    assert [entry.origin for entry in index.entries()] == ["local"]


def test_an_endpoint_without_names_is_refused() -> None:
    with pytest.raises(ValueError, match="no name"):
        NameIndex().add(NET_A, "endpoint-1", ["", ""], "10.1.0.2")


def test_lookups_stay_fast_with_many_endpoints() -> None:
    index = NameIndex()
    for number in range(10_000):
        network_id = f"network-{number % 50}"
        address = IPv4Address("10.0.0.0") + number + 1
        index.add(network_id, f"endpoint-{number}", [f"name-{number}", "shared"], address)

    assert index.lookup(["network-7"], "name-7") == [IPv4Address("10.0.0.8")]
    assert len(index.lookup(["network-7"], "shared")) == 200
    assert index.reverse(["network-7"], "10.0.0.8") == "name-7"
