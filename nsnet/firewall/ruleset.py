"""nsnet's nftables ruleset, rendered as libnftables JSON by pure functions.

nsnet owns two tables and never touches any other: ``inet nsnet`` (NAT and forward filtering)
and, only while some network has inter-container communication off, ``bridge nsnet``. The rules
are fixed; every per-network and per-port fact is an element of a set or map, so a network or a
published port is added or removed by one transaction of element changes, and a packet is
classified by hash lookups instead of a walk over a rule per port.

Packet paths (``inet nsnet``)
-----------------------------
prerouting (nat, dstnat)
    A packet addressed to a host address (``fib daddr type local``) jumps to ``published``,
    which DNATs it through the ``binding_*`` maps (keyed by host address, protocol and port)
    or, failing that, the ``wildcard_*`` maps (bindings to 0.0.0.0, keyed by protocol and
    port); one map gives the container's address, its twin the container's port. A
    127.0.0.0/8 destination is never DNATed here: a binding to 127.0.0.1 must not be reachable
    by a forged packet arriving on an uplink (moby#41872).
output (nat, dstnat)
    The host's own connections to its own addresses, 127.0.0.1 included, take the same
    ``published`` chain: published ports answer on localhost without a userland proxy.
postrouting (nat, srcnat)
    1. A 127.0.0.0/8 source leaving through an nsnet bridge is masqueraded (localhost access:
       the container cannot answer 127.0.0.1; the bridge needs ``route_localnet=1``).
    2. DNATed traffic leaving through the bridge whose subnet holds its source is masqueraded
       (hairpin: a container reaching itself or a neighbour through a host address), so that
       the reply returns through the host and is un-NATed.
    3. Anything else leaving through its own bridge keeps its address.
    4. A source in ``masquerade_subnets`` (networks with masquerade on, never internal ones)
       leaving through any other interface is masqueraded.
forward (filter)
    Established and related traffic is accepted; traffic in and out of the same bridge is
    accepted (it reaches this hook when br_netfilter passes bridged frames to IP hooks, or for
    hairpin traffic); an internal network's bridge passes nothing in or out; into any nsnet
    bridge only DNATed traffic (published ports) is accepted, which also drops traffic
    between two different nsnet bridges in both directions.

Inter-container communication off (``bridge nsnet``)
------------------------------------------------------
Frames between two ports of one bridge never reach the inet hooks unless br_netfilter is
active, so the bridge family's prerouting hook drops an IPv4 frame whose source and
destination both lie in the subnet of an icc-off network, unless it is addressed to the
gateway (the host). The hook runs before br_netfilter's DNAT, so a container reaching a
published port through a host address is unaffected; ARP passes. This kernel family offers
neither ``meta ibrname`` nor conntrack on every machine, hence matching by subnet.

Removal uses "add element, then delete element" in one transaction: adding an element that is
present changes nothing, so the delete always finds it and removing twice is harmless.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from nsnet.errors import InvalidArgument

TABLE = "nsnet"
INET = "inet"
BRIDGE = "bridge"

# Chains of the inet table.
CHAIN_PREROUTING = "prerouting"
CHAIN_OUTPUT = "output"
CHAIN_PUBLISHED = "published"
CHAIN_POSTROUTING = "postrouting"
CHAIN_FORWARD = "forward"
# Chain of the bridge table.
CHAIN_ICC = "prerouting"

# Sets and maps of the inet table.
SET_BRIDGES = "bridges"  # every nsnet bridge
SET_SAME_BRIDGE = "same_bridge"  # "bridge . bridge": traffic in and out of one bridge
SET_BRIDGE_SUBNETS = "bridge_subnets"  # "subnet . bridge"
SET_INTERNAL_BRIDGES = "internal_bridges"
SET_MASQUERADE_SUBNETS = "masquerade_subnets"
# Bindings to one host address, keyed "host address . protocol . host port".
MAP_BINDING_ADDRESSES = "binding_addresses"  # : container address
MAP_BINDING_PORTS = "binding_ports"  # : container port
# Bindings to 0.0.0.0 (every host address), keyed "protocol . host port".
MAP_WILDCARD_ADDRESSES = "wildcard_addresses"  # : container address
MAP_WILDCARD_PORTS = "wildcard_ports"  # : container port
# Sets of the bridge table.
SET_ICC_OFF_SUBNETS = "icc_off_subnets"  # "subnet . subnet"
SET_ICC_OFF_GATEWAYS = "icc_off_gateways"

PRIORITY_DSTNAT = -100
PRIORITY_SRCNAT = 100
PRIORITY_FILTER = 0
PRIORITY_BRIDGE_FILTER = -200

PROTOCOLS = ("tcp", "udp", "sctp")
LOOPBACK = IPv4Network("127.0.0.0/8")
ANY_ADDRESS = IPv4Address("0.0.0.0")


@dataclass(frozen=True)
class BridgeNetwork:
    """One bridge network as the firewall sees it."""

    name: str  # network name, for logs
    bridge: str  # bridge device, e.g. nsnet0 or br-0123456789ab
    subnet: IPv4Network
    gateway: IPv4Address
    internal: bool
    icc: bool  # com.docker.network.bridge.enable_icc
    masquerade: bool  # com.docker.network.bridge.enable_ip_masquerade


@dataclass(frozen=True)
class Binding:
    """One published port: host_ip:host_port/protocol to container_ip:container_port."""

    host_ip: IPv4Address  # 0.0.0.0 = every host address
    host_port: int
    protocol: str  # tcp | udp | sctp
    container_ip: IPv4Address
    container_port: int
    bridge: str  # the container's bridge

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise InvalidArgument(f"cannot publish port '{self}': unknown protocol")
        for port in (self.host_port, self.container_port):
            if not 1 <= port <= 65535:
                raise InvalidArgument(f"cannot publish port '{self}': port {port} out of range")

    def __str__(self) -> str:
        return (
            f"{self.host_ip}:{self.host_port}/{self.protocol} -> "
            f"{self.container_ip}:{self.container_port}"
        )


Json = dict[str, Any]


def render(networks: Iterable[BridgeNetwork], bindings: Iterable[Binding]) -> Json:
    """The whole ruleset as one transaction that deletes and recreates nsnet's own tables."""
    networks = sorted(networks, key=lambda network: network.bridge)
    bindings = sorted(bindings, key=_binding_order)
    with_bridge_table = bridge_table_needed(networks)

    # "add" before "delete" so that deleting a table that is absent is not an error.
    commands: list[Json] = [
        {"add": {"table": _table(INET)}},
        {"delete": {"table": _table(INET)}},
        *_inet_skeleton(),
        {"add": {"table": _table(BRIDGE)}},
        {"delete": {"table": _table(BRIDGE)}},
    ]
    if with_bridge_table:
        commands += _bridge_skeleton()

    for network in networks:
        commands += _network_elements("add", network, with_bridge_table)
    commands += _binding_elements("add", bindings)
    return _transaction(commands)


def bridge_table_needed(networks: Iterable[BridgeNetwork]) -> bool:
    """Whether any network needs the bridge table (inter-container communication off)."""
    return any(not network.icc for network in networks)


def add_network(network: BridgeNetwork, bridge_table_exists: bool = True) -> Json:
    """Elements that enforce ``network``'s options.

    An icc-off network needs the bridge table; when it does not exist yet
    (``bridge_table_exists`` false) the transaction creates it first.
    """
    commands = []
    if not network.icc and not bridge_table_exists:
        commands += [{"add": {"table": _table(BRIDGE)}}, *_bridge_skeleton()]
    commands += _network_elements("add", network, with_bridge_table=True)
    return _transaction(commands)


def remove_network(network: BridgeNetwork, bridge_table_exists: bool = True) -> Json:
    """Remove ``network``'s elements; removing an absent network changes nothing."""
    elements = _network_elements("add", network, bridge_table_exists)
    return _transaction(elements + _network_elements("delete", network, bridge_table_exists))


def add_bindings(bindings: Iterable[Binding]) -> Json:
    """Map elements that publish ``bindings``."""
    return _transaction(_binding_elements("add", sorted(bindings, key=_binding_order)))


def remove_bindings(bindings: Iterable[Binding]) -> Json:
    """Remove ``bindings``' map elements; removing absent bindings changes nothing."""
    bindings = sorted(bindings, key=_binding_order)
    return _transaction(_binding_elements("add", bindings) + _binding_elements("delete", bindings))


def _transaction(commands: list[Json]) -> Json:
    return {"nftables": [{"metainfo": {"json_schema_version": 1}}, *commands]}


def _table(family: str) -> Json:
    return {"family": family, "name": TABLE}


def _binding_order(binding: Binding) -> tuple:
    return (binding.host_ip, binding.protocol, binding.host_port)


# Expressions ------------------------------------------------------------------------------


def _payload(protocol: str, field: str) -> Json:
    return {"payload": {"protocol": protocol, "field": field}}


def _meta(key: str) -> Json:
    return {"meta": {"key": key}}


def _concat(*expressions: Any) -> Json:
    return {"concat": list(expressions)}


def _match(left: Any, right: Any, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def _in_set(left: Any, set_name: str) -> Json:
    return _match(left, f"@{set_name}")


def _prefix(network: IPv4Network) -> Json:
    return {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}


IP_SADDR = _payload("ip", "saddr")
IP_DADDR = _payload("ip", "daddr")
IIFNAME = _meta("iifname")
OIFNAME = _meta("oifname")
CT_STATUS_DNAT = _match({"ct": {"key": "status"}}, "dnat", op="in")
DADDR_IS_LOCAL = _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")
BINDING_KEY = _concat(IP_DADDR, _meta("l4proto"), _payload("th", "dport"))
BINDING_KEY_TYPE = ["ipv4_addr", "inet_proto", "inet_service"]
WILDCARD_KEY = _concat(_meta("l4proto"), _payload("th", "dport"))
WILDCARD_KEY_TYPE = ["inet_proto", "inet_service"]

ACCEPT: Json = {"accept": None}
DROP: Json = {"drop": None}
RETURN: Json = {"return": None}
MASQUERADE: Json = {"masquerade": None}


def _dnat_through(addresses: str, ports: str, key: Json) -> Json:
    """``dnat ip to KEY map @addresses : KEY map @ports``.

    One map with concatenated data (``ipv4_addr . inet_service``) would do with one lookup,
    but nftables 1.0.6's JSON parser ignores a concatenated map type and makes a plain set
    (nft then crashes on the rule), so address and port live in two maps with one key.
    """
    address = {"map": {"key": key, "data": f"@{addresses}"}}
    port = {"map": {"key": key, "data": f"@{ports}"}}
    return {"dnat": {"family": "ip", "addr": address, "port": port}}


# Skeletons --------------------------------------------------------------------------------


def _set(family: str, name: str, set_type: str | list[str], interval: bool = False) -> Json:
    body: Json = {"family": family, "table": TABLE, "name": name, "type": set_type}
    if interval:
        body["flags"] = ["interval"]
    return {"add": {"set": body}}


def _map(name: str, key_type: list[str], data_type: str) -> Json:
    body = {"family": INET, "table": TABLE, "name": name, "type": key_type, "map": data_type}
    return {"add": {"map": body}}


def _base_chain(family: str, name: str, chain_type: str, hook: str, priority: int) -> Json:
    body = {
        "family": family,
        "table": TABLE,
        "name": name,
        "type": chain_type,
        "hook": hook,
        "prio": priority,
        "policy": "accept",
    }
    return {"add": {"chain": body}}


def _chain(family: str, name: str) -> Json:
    return {"add": {"chain": {"family": family, "table": TABLE, "name": name}}}


def _rule(family: str, chain: str, comment: str, *statements: Json) -> Json:
    body = {"family": family, "table": TABLE, "chain": chain, "expr": list(statements)}
    body["comment"] = comment
    return {"add": {"rule": body}}


def _inet_skeleton() -> list[Json]:
    def rule(chain: str, comment: str, *statements: Json) -> Json:
        return _rule(INET, chain, comment, *statements)

    return [
        {"add": {"table": _table(INET)}},
        _set(INET, SET_BRIDGES, "ifname"),
        _set(INET, SET_SAME_BRIDGE, ["ifname", "ifname"]),
        _set(INET, SET_BRIDGE_SUBNETS, ["ipv4_addr", "ifname"], interval=True),
        _set(INET, SET_INTERNAL_BRIDGES, "ifname"),
        _set(INET, SET_MASQUERADE_SUBNETS, "ipv4_addr", interval=True),
        _map(MAP_BINDING_ADDRESSES, BINDING_KEY_TYPE, "ipv4_addr"),
        _map(MAP_BINDING_PORTS, BINDING_KEY_TYPE, "inet_service"),
        _map(MAP_WILDCARD_ADDRESSES, WILDCARD_KEY_TYPE, "ipv4_addr"),
        _map(MAP_WILDCARD_PORTS, WILDCARD_KEY_TYPE, "inet_service"),
        _base_chain(INET, CHAIN_PREROUTING, "nat", "prerouting", PRIORITY_DSTNAT),
        _base_chain(INET, CHAIN_OUTPUT, "nat", "output", PRIORITY_DSTNAT),
        _chain(INET, CHAIN_PUBLISHED),
        _base_chain(INET, CHAIN_POSTROUTING, "nat", "postrouting", PRIORITY_SRCNAT),
        _base_chain(INET, CHAIN_FORWARD, "filter", "forward", PRIORITY_FILTER),
        rule(
            CHAIN_PREROUTING,
            "a loopback destination arriving from outside is never published",
            _match(IP_DADDR, _prefix(LOOPBACK)),
            RETURN,
        ),
        rule(
            CHAIN_PREROUTING,
            "published ports on host addresses",
            DADDR_IS_LOCAL,
            {"jump": {"target": CHAIN_PUBLISHED}},
        ),
        rule(
            CHAIN_OUTPUT,
            "published ports reached from the host itself, localhost included",
            DADDR_IS_LOCAL,
            {"jump": {"target": CHAIN_PUBLISHED}},
        ),
        rule(
            CHAIN_PUBLISHED,
            "bindings to one host address",
            _dnat_through(MAP_BINDING_ADDRESSES, MAP_BINDING_PORTS, BINDING_KEY),
        ),
        rule(
            CHAIN_PUBLISHED,
            "bindings to every host address",
            _dnat_through(MAP_WILDCARD_ADDRESSES, MAP_WILDCARD_PORTS, WILDCARD_KEY),
        ),
        rule(
            CHAIN_POSTROUTING,
            "localhost access: a container cannot answer a loopback source",
            _match(IP_SADDR, _prefix(LOOPBACK)),
            _in_set(OIFNAME, SET_BRIDGES),
            MASQUERADE,
        ),
        rule(
            CHAIN_POSTROUTING,
            "hairpin: the reply must come back through the host to be un-NATed",
            CT_STATUS_DNAT,
            _in_set(_concat(IP_SADDR, OIFNAME), SET_BRIDGE_SUBNETS),
            MASQUERADE,
        ),
        rule(
            CHAIN_POSTROUTING,
            "traffic within its own bridge keeps its address",
            _in_set(_concat(IP_SADDR, OIFNAME), SET_BRIDGE_SUBNETS),
            RETURN,
        ),
        rule(
            CHAIN_POSTROUTING,
            "outbound traffic of networks with masquerade on",
            _in_set(IP_SADDR, SET_MASQUERADE_SUBNETS),
            MASQUERADE,
        ),
        rule(
            CHAIN_FORWARD,
            "replies and related traffic",
            _match({"ct": {"key": "state"}}, ["established", "related"], op="in"),
            ACCEPT,
        ),
        rule(
            CHAIN_FORWARD,
            "traffic within one bridge",
            _in_set(_concat(IIFNAME, OIFNAME), SET_SAME_BRIDGE),
            ACCEPT,
        ),
        rule(
            CHAIN_FORWARD,
            "internal networks: nothing out",
            _in_set(IIFNAME, SET_INTERNAL_BRIDGES),
            DROP,
        ),
        rule(
            CHAIN_FORWARD,
            "internal networks: nothing in",
            _in_set(OIFNAME, SET_INTERNAL_BRIDGES),
            DROP,
        ),
        rule(
            CHAIN_FORWARD,
            "published ports",
            _in_set(OIFNAME, SET_BRIDGES),
            CT_STATUS_DNAT,
            ACCEPT,
        ),
        rule(
            CHAIN_FORWARD,
            "nothing else into a bridge: other networks and the outside stay out",
            _in_set(OIFNAME, SET_BRIDGES),
            DROP,
        ),
    ]


def _bridge_skeleton() -> list[Json]:
    return [
        {"add": {"table": _table(BRIDGE)}},
        _set(BRIDGE, SET_ICC_OFF_GATEWAYS, "ipv4_addr"),
        _set(BRIDGE, SET_ICC_OFF_SUBNETS, ["ipv4_addr", "ipv4_addr"], interval=True),
        _base_chain(BRIDGE, CHAIN_ICC, "filter", "prerouting", PRIORITY_BRIDGE_FILTER),
        _rule(
            BRIDGE,
            CHAIN_ICC,
            "the host stays reachable",
            _in_set(IP_DADDR, SET_ICC_OFF_GATEWAYS),
            RETURN,
        ),
        _rule(
            BRIDGE,
            CHAIN_ICC,
            "no traffic between containers of an icc-off network",
            _in_set(_concat(IP_SADDR, IP_DADDR), SET_ICC_OFF_SUBNETS),
            DROP,
        ),
    ]


# Elements ---------------------------------------------------------------------------------


def _elements(verb: str, family: str, set_name: str, elements: list[Any]) -> list[Json]:
    if not elements:
        return []
    body = {"family": family, "table": TABLE, "name": set_name, "elem": elements}
    return [{verb: {"element": body}}]


def _network_elements(verb: str, network: BridgeNetwork, with_bridge_table: bool) -> list[Json]:
    bridge = network.bridge
    subnet = _prefix(network.subnet)
    commands = [
        *_elements(verb, INET, SET_BRIDGES, [bridge]),
        *_elements(verb, INET, SET_SAME_BRIDGE, [_concat(bridge, bridge)]),
        *_elements(verb, INET, SET_BRIDGE_SUBNETS, [_concat(subnet, bridge)]),
    ]
    if network.internal:
        commands += _elements(verb, INET, SET_INTERNAL_BRIDGES, [bridge])
    elif network.masquerade:
        commands += _elements(verb, INET, SET_MASQUERADE_SUBNETS, [subnet])
    if not network.icc and with_bridge_table:
        commands += _elements(verb, BRIDGE, SET_ICC_OFF_GATEWAYS, [str(network.gateway)])
        commands += _elements(verb, BRIDGE, SET_ICC_OFF_SUBNETS, [_concat(subnet, subnet)])
    return commands


def _binding_elements(verb: str, bindings: list[Binding]) -> list[Json]:
    addresses, ports, wildcard_addresses, wildcard_ports = [], [], [], []
    for binding in bindings:
        if binding.host_ip == ANY_ADDRESS:
            key = _concat(binding.protocol, binding.host_port)
            wildcard_addresses.append([key, str(binding.container_ip)])
            wildcard_ports.append([key, binding.container_port])
        else:
            key = _concat(str(binding.host_ip), binding.protocol, binding.host_port)
            addresses.append([key, str(binding.container_ip)])
            ports.append([key, binding.container_port])
    return [
        *_elements(verb, INET, MAP_BINDING_ADDRESSES, addresses),
        *_elements(verb, INET, MAP_BINDING_PORTS, ports),
        *_elements(verb, INET, MAP_WILDCARD_ADDRESSES, wildcard_addresses),
        *_elements(verb, INET, MAP_WILDCARD_PORTS, wildcard_ports),
    ]
