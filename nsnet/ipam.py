"""IP address management: default pools, subnet choice, reservations and allocation.

Pure logic over ``IpamConfig`` and a set of allocated addresses (as integers); the engine keeps
allocations in the store, whose primary key makes a double allocation impossible.

Docker's default pools, in order: 172.17.0.0/16 … 172.31.0.0/16, then the sixteen /20 pieces of
192.168.0.0/16. A pool is skipped when it overlaps an existing network or a host route; default
routes (and the VPN pair 0.0.0.0/1 + 128.0.0.0/1) never block a pool.
"""

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network

from nsnet.errors import Conflict, InvalidArgument
from nsnet.models import IpamConfig

DEFAULT_POOLS: tuple[IPv4Network, ...] = tuple(
    [IPv4Network(f"172.{second}.0.0/16") for second in range(17, 32)]
    + list(IPv4Network("192.168.0.0/16").subnets(new_prefix=20))
)


# Addresses the kernel never routes to or from a bridge's hosts.
UNUSABLE_SUBNETS = (
    (IPv4Network("0.0.0.0/8"), "'this network'"),
    (IPv4Network("127.0.0.0/8"), "loopback"),
    (IPv4Network("224.0.0.0/4"), "multicast"),
    (IPv4Network("240.0.0.0/4"), "reserved (and broadcast)"),
)


def parse_network(text: str, what: str = "subnet") -> IPv4Network:
    """An IPv4 network from CIDR text, refusing host bits and IPv6 with a clear error."""
    try:
        network = ip_network(text, strict=True)
    except ValueError as error:
        raise InvalidArgument(f"invalid {what} '{text}': {error}") from error
    if "/" not in text:
        # ip_network reads a bare address as a /32, which nobody means as a subnet.
        raise InvalidArgument(f"invalid {what} '{text}': invalid CIDR address (no /prefix)")
    if network.version != 4:
        raise InvalidArgument(f"invalid {what} '{text}': IPv6 is not supported yet")
    return network


def parse_address(text: str, what: str = "address") -> IPv4Address:
    """An IPv4 address from text; InvalidArgument naming ``what`` otherwise (IPv6 too)."""
    try:
        address = ip_address(text)
    except ValueError as error:
        raise InvalidArgument(f"invalid {what} '{text}': not an IP address") from error
    if address.version != 4:
        raise InvalidArgument(f"invalid {what} '{text}': IPv6 is not supported yet")
    return address


def mac_from_address(address: IPv4Address) -> str:
    """Docker's MAC for an IPv4 address: 02:42 followed by the address's four bytes."""
    return "02:42:" + ":".join(f"{byte:02x}" for byte in address.packed)


def blocks_allocation(route: IPv4Network) -> bool:
    """Whether a host route keeps a pool from being used (default routes never do)."""
    return route.prefixlen > 1


def choose_subnet(
    taken: Iterable[IPv4Network],
    host_routes: Iterable[IPv4Network],
    pools: Iterable[IPv4Network] = DEFAULT_POOLS,
) -> IPv4Network:
    """The first default pool that overlaps no existing network and no host route."""
    blocked = list(taken) + [route for route in host_routes if blocks_allocation(route)]
    for pool in pools:
        if not any(pool.overlaps(other) for other in blocked):
            return pool
    raise Conflict("cannot choose a subnet: all default address pools overlap existing networks")


def usable_range(subnet: IPv4Network) -> tuple[int, int]:
    """First and last assignable address as integers.

    The network and broadcast addresses are kept out, except in /31 and /32.
    """
    first, last = int(subnet.network_address), int(subnet.broadcast_address)
    if subnet.prefixlen < 31:
        first, last = first + 1, last - 1
    return first, last


def complete(config: IpamConfig, name: str) -> IpamConfig:
    """Check one subnet's configuration and fill in the gateway (the first usable address)."""
    subnet = config.subnet
    for special, kind in UNUSABLE_SUBNETS:
        if subnet.overlaps(special):
            raise InvalidArgument(
                f"cannot create network '{name}': subnet {subnet} overlaps {special}, the "
                f"{kind} addresses, which no bridge can carry"
            )
    if config.ip_range is not None and not config.ip_range.subnet_of(subnet):
        raise InvalidArgument(
            f"cannot create network '{name}': ip-range {config.ip_range} is not inside "
            f"subnet {subnet}"
        )
    first, last = usable_range(subnet)
    if first > last:
        raise InvalidArgument(f"cannot create network '{name}': subnet {subnet} has no addresses")
    gateway = config.gateway
    if gateway is None:
        gateway = IPv4Address(first)
    elif gateway not in subnet:
        raise InvalidArgument(
            f"cannot create network '{name}': gateway {gateway} is not inside subnet {subnet}"
        )
    elif not first <= int(gateway) <= last:
        raise InvalidArgument(
            f"cannot create network '{name}': gateway {gateway} is the network or broadcast "
            f"address of subnet {subnet}"
        )
    for label, address in config.aux_addresses.items():
        if address not in subnet:
            raise InvalidArgument(
                f"cannot create network '{name}': auxiliary address '{label}' {address} is not "
                f"inside subnet {subnet}"
            )
    return IpamConfig(
        subnet=subnet,
        gateway=gateway,
        ip_range=config.ip_range,
        aux_addresses=dict(config.aux_addresses),
    )


def reserved(config: IpamConfig) -> set[int]:
    """Addresses never handed to an endpoint: the gateway and the auxiliary addresses."""
    addresses = {int(address) for address in config.aux_addresses.values()}
    if config.gateway is not None:
        addresses.add(int(config.gateway))
    return addresses


def next_free(config: IpamConfig, allocated: set[int]) -> IPv4Address:
    """The lowest free address of the pool (the ip-range when given, else the subnet)."""
    first, last = usable_range(config.subnet)
    if config.ip_range is not None:
        range_first = int(config.ip_range.network_address)
        range_last = int(config.ip_range.broadcast_address)
        first, last = max(first, range_first), min(last, range_last)
    taken = allocated | reserved(config)
    for candidate in range(first, last + 1):
        if candidate not in taken:
            return IPv4Address(candidate)
    pool = config.ip_range or config.subnet
    raise Conflict(f"cannot allocate an address: no free address left in {pool}")


def check_static(config: IpamConfig, address: IPv4Address, allocated: set[int]) -> None:
    """Refuse an address given with --ip that is outside the subnet, reserved or taken."""
    first, last = usable_range(config.subnet)
    if address not in config.subnet:
        raise InvalidArgument(f"address {address} is not inside subnet {config.subnet}")
    if not first <= int(address) <= last:
        raise InvalidArgument(
            f"address {address} is the network or broadcast address of {config.subnet}"
        )
    if int(address) in reserved(config):
        raise Conflict(f"address {address} is reserved in {config.subnet}")
    if int(address) in allocated:
        raise Conflict(f"address {address} is already in use")
