"""nsnet.ipam: default pools, subnet choice, reservations, allocation and static addresses."""

from ipaddress import IPv4Address, IPv4Network

import pytest

from nsnet import ipam
from nsnet.errors import Conflict, InvalidArgument
from nsnet.models import IpamConfig


def network(text: str) -> IPv4Network:
    return IPv4Network(text)


def address(text: str) -> IPv4Address:
    return IPv4Address(text)


def config(subnet: str, **fields) -> IpamConfig:
    """A completed configuration, as the engine stores it."""
    given = {
        "gateway": address(fields["gateway"]) if fields.get("gateway") else None,
        "ip_range": network(fields["ip_range"]) if fields.get("ip_range") else None,
        "aux_addresses": {k: address(v) for k, v in fields.get("aux_addresses", {}).items()},
    }
    return ipam.complete(IpamConfig(subnet=network(subnet), **given), "test")


# Default pools and subnet choice


def test_default_pools_follow_dockers_order() -> None:
    pools = [str(pool) for pool in ipam.DEFAULT_POOLS]

    assert pools[:15] == [f"172.{second}.0.0/16" for second in range(17, 32)]
    assert pools[15:] == [f"192.168.{third}.0/20" for third in range(0, 256, 16)]


def test_the_first_pool_is_172_17() -> None:
    assert ipam.choose_subnet([], []) == network("172.17.0.0/16")


def test_pools_overlapping_existing_networks_are_skipped() -> None:
    taken = [network("172.17.0.0/16"), network("172.18.3.0/24")]

    assert ipam.choose_subnet(taken, []) == network("172.19.0.0/16")


def test_pools_overlapping_a_host_route_are_skipped() -> None:
    routes = [network("172.17.5.0/24"), network("192.0.2.0/24")]

    assert ipam.choose_subnet([], routes) == network("172.18.0.0/16")


def test_a_wide_host_route_skips_every_pool_inside_it() -> None:
    routes = [network("172.16.0.0/12")]

    assert ipam.choose_subnet([], routes) == network("192.168.0.0/20")


def test_after_the_172_pools_come_the_192_168_pieces_in_order() -> None:
    taken = [network("172.16.0.0/12"), network("192.168.0.0/20")]
    routes = [network("192.168.17.0/24")]

    assert ipam.choose_subnet(taken, routes) == network("192.168.32.0/20")


@pytest.mark.parametrize(
    "routes",
    [
        ["0.0.0.0/0"],
        ["0.0.0.0/1", "128.0.0.0/1"],
        ["0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1", "192.0.2.0/24"],
    ],
    ids=["default route", "VPN pair", "both and an uplink"],
)
def test_default_routes_never_block_a_pool(routes: list[str]) -> None:
    assert ipam.choose_subnet([], [network(route) for route in routes]) == network("172.17.0.0/16")


def test_default_routes_do_not_block_allocation() -> None:
    for route in ("0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1"):
        assert not ipam.blocks_allocation(network(route))
    assert ipam.blocks_allocation(network("172.17.0.0/16"))
    assert ipam.blocks_allocation(network("10.0.0.0/8"))


def test_no_free_pool_is_a_clear_conflict() -> None:
    taken = [network("172.16.0.0/12"), network("192.168.0.0/16")]

    with pytest.raises(Conflict, match="all default address pools overlap"):
        ipam.choose_subnet(taken, [])


# Reserved addresses and the gateway


@pytest.mark.parametrize(
    ("subnet", "first", "last"),
    [
        ("10.0.0.0/24", "10.0.0.1", "10.0.0.254"),
        ("10.0.0.0/30", "10.0.0.1", "10.0.0.2"),
        ("10.0.0.0/31", "10.0.0.0", "10.0.0.1"),
        ("10.0.0.7/32", "10.0.0.7", "10.0.0.7"),
    ],
)
def test_network_and_broadcast_are_reserved_except_in_31_and_32(
    subnet: str, first: str, last: str
) -> None:
    assert ipam.usable_range(network(subnet)) == (int(address(first)), int(address(last)))


def test_the_gateway_is_the_first_usable_address_unless_given() -> None:
    assert config("10.1.0.0/24").gateway == address("10.1.0.1")
    assert config("10.1.0.0/24", gateway="10.1.0.254").gateway == address("10.1.0.254")
    assert config("10.1.0.0/31").gateway == address("10.1.0.0")


def test_a_gateway_outside_the_subnet_is_refused_naming_both() -> None:
    with pytest.raises(InvalidArgument) as caught:
        config("10.1.0.0/24", gateway="10.2.0.1")

    assert "10.2.0.1" in str(caught.value)
    assert "10.1.0.0/24" in str(caught.value)
    assert "'test'" in str(caught.value)


@pytest.mark.parametrize("gateway", ["10.1.0.0", "10.1.0.255"])
def test_the_network_or_broadcast_address_cannot_be_the_gateway(gateway: str) -> None:
    with pytest.raises(InvalidArgument, match=f"gateway {gateway} is the network or broadcast"):
        config("10.1.0.0/24", gateway=gateway)


@pytest.mark.parametrize(
    ("subnet", "kind"),
    [
        ("127.0.0.0/24", "loopback"),
        ("224.0.0.0/24", "multicast"),
        ("239.255.0.0/16", "multicast"),
        ("240.0.0.0/24", "reserved"),
        ("0.0.0.0/16", "'this network'"),
        ("96.0.0.0/3", "loopback"),  # wider than the block it covers
    ],
)
def test_subnets_no_bridge_can_carry_are_refused(subnet: str, kind: str) -> None:
    with pytest.raises(InvalidArgument, match=f"subnet {subnet} overlaps .*, the {kind}"):
        config(subnet)


def test_an_ip_range_outside_the_subnet_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="ip-range 10.2.0.0/25 is not inside"):
        config("10.1.0.0/24", ip_range="10.2.0.0/25")


def test_an_auxiliary_address_outside_the_subnet_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="auxiliary address 'router' 10.9.0.1"):
        config("10.1.0.0/24", aux_addresses={"router": "10.9.0.1"})


def test_gateway_and_auxiliary_addresses_are_reserved() -> None:
    completed = config("10.1.0.0/24", aux_addresses={"a": "10.1.0.2", "b": "10.1.0.9"})

    assert ipam.reserved(completed) == {
        int(address("10.1.0.1")),
        int(address("10.1.0.2")),
        int(address("10.1.0.9")),
    }


# Dynamic allocation


def test_allocation_starts_after_the_gateway() -> None:
    completed = config("10.1.0.0/24")

    assert ipam.next_free(completed, set()) == address("10.1.0.2")
    assert ipam.next_free(completed, {int(address("10.1.0.2"))}) == address("10.1.0.3")


def test_allocation_skips_auxiliary_addresses() -> None:
    completed = config("10.1.0.0/24", aux_addresses={"a": "10.1.0.2", "b": "10.1.0.3"})

    assert ipam.next_free(completed, set()) == address("10.1.0.4")


def test_a_released_address_is_handed_out_again() -> None:
    completed = config("10.1.0.0/24")
    allocated = {int(address("10.1.0.3"))}

    assert ipam.next_free(completed, allocated) == address("10.1.0.2")


def test_allocation_honours_the_ip_range() -> None:
    completed = config("10.1.0.0/24", ip_range="10.1.0.128/26")
    allocated: set[int] = set()

    assert ipam.next_free(completed, allocated) == address("10.1.0.128")
    for _ in range(64):
        allocated.add(int(ipam.next_free(completed, allocated)))

    assert max(allocated) == int(address("10.1.0.191"))
    with pytest.raises(Conflict, match="no free address left in 10.1.0.128/26"):
        ipam.next_free(completed, allocated)


def test_an_ip_range_at_the_start_of_the_subnet_keeps_the_network_address_and_gateway_out() -> (
    None
):
    completed = config("10.1.0.0/24", ip_range="10.1.0.0/28")

    assert ipam.next_free(completed, set()) == address("10.1.0.2")


def test_a_31_gives_both_addresses_and_a_32_none_beyond_its_gateway() -> None:
    pair = config("10.1.0.0/31")
    assert ipam.next_free(pair, set()) == address("10.1.0.1")

    single = config("10.1.0.5/32")
    with pytest.raises(Conflict, match="no free address left in 10.1.0.5/32"):
        ipam.next_free(single, set())


def test_exhaustion_is_a_clear_conflict_naming_the_pool() -> None:
    completed = config("10.1.0.0/30")
    allocated = {int(ipam.next_free(completed, set()))}

    assert allocated == {int(address("10.1.0.2"))}
    with pytest.raises(Conflict, match=r"no free address left in 10\.1\.0\.0/30"):
        ipam.next_free(completed, allocated)


# Static addresses (--ip)


def test_a_free_static_address_inside_the_subnet_is_accepted() -> None:
    completed = config("10.1.0.0/24", ip_range="10.1.0.128/25")

    ipam.check_static(completed, address("10.1.0.50"), set())
    ipam.check_static(completed, address("10.1.0.200"), {int(address("10.1.0.201"))})


def test_a_static_address_outside_the_subnet_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="10.2.0.5 is not inside subnet 10.1.0.0/24"):
        ipam.check_static(config("10.1.0.0/24"), address("10.2.0.5"), set())


@pytest.mark.parametrize("static", ["10.1.0.0", "10.1.0.255"])
def test_network_and_broadcast_cannot_be_static_addresses(static: str) -> None:
    with pytest.raises(InvalidArgument, match=f"{static} is the network or broadcast"):
        ipam.check_static(config("10.1.0.0/24"), address(static), set())


def test_both_addresses_of_a_31_can_be_static_except_the_gateway() -> None:
    pair = config("10.1.0.0/31")

    ipam.check_static(pair, address("10.1.0.1"), set())
    with pytest.raises(Conflict, match="10.1.0.0 is reserved"):
        ipam.check_static(pair, address("10.1.0.0"), set())


@pytest.mark.parametrize("static", ["10.1.0.1", "10.1.0.7"])
def test_reserved_addresses_cannot_be_static_addresses(static: str) -> None:
    completed = config("10.1.0.0/24", aux_addresses={"printer": "10.1.0.7"})

    with pytest.raises(Conflict, match=f"address {static} is reserved"):
        ipam.check_static(completed, address(static), set())


def test_a_taken_static_address_is_refused() -> None:
    with pytest.raises(Conflict, match="address 10.1.0.9 is already in use"):
        ipam.check_static(config("10.1.0.0/24"), address("10.1.0.9"), {int(address("10.1.0.9"))})


def test_a_static_address_is_never_handed_out_dynamically_while_taken() -> None:
    completed = config("10.1.0.0/29")
    allocated = {int(address("10.1.0.3"))}  # pinned with --ip

    handed = []
    for _ in range(4):
        handed.append(ipam.next_free(completed, allocated))
        allocated.add(int(handed[-1]))

    assert [str(each) for each in handed] == ["10.1.0.2", "10.1.0.4", "10.1.0.5", "10.1.0.6"]
    with pytest.raises(Conflict):
        ipam.next_free(completed, allocated)


# Parsing


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("10.0.0.0/33", "does not appear to be an IPv4 or IPv6 network"),
        ("nonsense", "does not appear to be an IPv4 or IPv6 network"),
        ("10.0.0.1/24", "has host bits set"),
        ("10.2.0.0", "invalid CIDR address (no /prefix)"),
        ("10.0.0.0/24/8", ""),
        ("", ""),
        ("fd00::/64", "IPv6 is not supported yet"),
    ],
)
def test_invalid_cidr_is_refused_naming_it(text: str, cause: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ipam.parse_network(text)

    message = str(caught.value)
    assert message.startswith(f"invalid subnet '{text}': ")
    assert cause in message


def test_parse_network_names_what_it_parses() -> None:
    with pytest.raises(InvalidArgument, match="invalid ip-range 'x'"):
        ipam.parse_network("x", "ip-range")
    assert ipam.parse_network("10.0.0.0/8") == network("10.0.0.0/8")


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("10.0.0.256", "not an IP address"),
        ("10.0.0", "not an IP address"),
        ("10.0.0.1/24", "not an IP address"),
        ("fd00::1", "IPv6 is not supported yet"),
    ],
)
def test_invalid_ip_is_refused_naming_it(text: str, cause: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ipam.parse_address(text, "IPv4 address")

    assert str(caught.value) == f"invalid IPv4 address '{text}': {cause}"


def test_a_valid_address_parses() -> None:
    assert ipam.parse_address("192.0.2.7") == address("192.0.2.7")
