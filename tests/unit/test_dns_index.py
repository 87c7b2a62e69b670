"""The DNS name index: scoping by network, qualified names, aliases, removal, reverse lookups,
origins."""

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


def test_a_name_qualified_by_its_network_resolves_there_only() -> None:
    """Regression: ``web.backend`` was not ours and went upstream (SERVFAIL without one)."""
    index = NameIndex()
    index.add(NET_A, "endpoint-web", ["web", "cache"], "10.1.0.2", network_name="backend")
    index.add(NET_B, "endpoint-db", ["db"], "10.2.0.2", network_name="front")

    assert index.lookup([NET_A], "web.backend") == addresses("10.1.0.2")
    assert index.lookup([NET_A], "cache.backend") == addresses("10.1.0.2")  # aliases too
    assert index.lookup([NET_A, NET_B], "WEB.Backend.") == addresses("10.1.0.2")
    assert index.lookup([NET_A, NET_B], "db.front") == addresses("10.2.0.2")
    # Scoped as bare names are: not for an asker off that network, nor on another one.
    assert index.lookup([NET_B], "web.backend") == []
    assert index.lookup([NET_A, NET_B], "web.front") == []
    assert index.lookup([NET_A], "db.front") == []


def test_a_qualified_name_of_another_host_resolves_too() -> None:
    index = NameIndex()
    index.add(NET_A, "endpoint-remote", ["api"], "10.1.0.7", network_name="mesh", origin="host-2")

    assert index.lookup([NET_A], "api.mesh") == addresses("10.1.0.7")

    index.remove_origin("host-2")
    assert index.lookup([NET_A], "api.mesh") == []


def test_a_name_with_a_search_domain_appended_is_not_ours() -> None:
    index = NameIndex()
    index.add(NET_A, "endpoint-web", ["web"], "10.1.0.2", network_name="backend")

    assert index.lookup([NET_A], "web.backend.example.com") == []
    assert index.lookup([NET_A], "web.example.com") == []
    assert index.lookup([NET_A], "backend") == []  # a network's name is no host name
    assert index.lookup([NET_A], ".backend") == []


def test_the_whole_name_goes_before_its_network_qualified_reading() -> None:
    """Docker's order: ``a.b.c`` on any network, then ``a.b`` on network ``c``, then ``a`` on
    network ``b.c``; dots may be in names and in network names alike."""
    index = NameIndex()
    index.add(NET_A, "endpoint-dotted", ["web.backend"], "10.1.0.2", network_name="front")
    index.add(NET_B, "endpoint-web", ["web"], "10.2.0.2", network_name="backend")

    assert index.lookup([NET_A, NET_B], "web.backend") == addresses("10.1.0.2")
    assert index.lookup([NET_B], "web.backend") == addresses("10.2.0.2")
    assert index.lookup([NET_A], "web.backend.front") == addresses("10.1.0.2")

    dotted = NameIndex()
    dotted.add(NET_A, "endpoint-api", ["api.v2"], "10.1.0.3", network_name="my.net")
    assert dotted.lookup([NET_A], "api.v2.my.net") == addresses("10.1.0.3")
    assert dotted.lookup([NET_A], "api.v2.net") == []


def test_without_a_network_name_only_bare_names_resolve() -> None:
    index = NameIndex()
    index.add(NET_A, "endpoint-web", ["web"], "10.1.0.2")

    assert index.lookup([NET_A], "web") == addresses("10.1.0.2")
    assert index.lookup([NET_A], "web.") == addresses("10.1.0.2")
    assert [entry.network_name for entry in index.entries()] == [""]


def test_a_network_name_is_forgotten_with_its_last_endpoint() -> None:
    index = NameIndex()
    index.add(NET_A, "endpoint-1", ["one"], "10.1.0.2", network_name="backend")
    index.add(NET_A, "endpoint-2", ["two"], "10.1.0.3", network_name="backend")

    index.remove("endpoint-1")
    assert index.lookup([NET_A], "two.backend") == addresses("10.1.0.3")

    index.remove("endpoint-2")
    index.add(NET_A, "endpoint-3", ["three"], "10.1.0.4")  # a later entry without the name
    assert index.lookup([NET_A], "three.backend") == []


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
