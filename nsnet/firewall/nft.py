"""Applying nsnet's ruleset through libnftables, and the conntrack flushes that go with it.

A ``Firewall`` wraps one libnftables context. libnftables opens its netlink socket when the
context is made, so the object acts in the network namespace of the thread that created it,
whichever thread calls it later: the daemon creates it in its host namespace. Each method is
one atomic transaction; a failure leaves the ruleset as it was and raises ``Unavailable`` with
nft's own error text.

Conntrack entries are removed by the kernel by a filter (``nsnet.firewall.conntrack``), or on
kernels without that through pyroute2's ctnetlink socket; either socket is opened per call in
the calling thread's namespace (so call those methods from a thread in the host namespace).
"""

import errno
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import nftables
from pyroute2 import Conntrack
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

from nsnet.errors import Unavailable
from nsnet.firewall import conntrack, ruleset
from nsnet.firewall.ruleset import ANY_ADDRESS, Binding, BridgeNetwork

log = logging.getLogger(__name__)

IP_PROTOCOL_NUMBERS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "sctp": 132}

# Families whose forward hook sees nsnet's forwarded (or bridged) IPv4 traffic.
_FORWARD_FAMILIES = ("ip", "inet", "bridge")


@dataclass(frozen=True)
class FirewallState:
    """What nsnet's tables hold, for ``nsnet info``."""

    tables: tuple[str, ...]  # "inet nsnet", "bridge nsnet" when present
    rules: int
    elements: dict[str, int] = field(default_factory=dict)  # "inet nsnet bridges": count


class Firewall:
    """nsnet's nftables tables in the namespace of the thread that made this object."""

    def __init__(self) -> None:
        try:
            self._nft = nftables.Nftables()
        except OSError as error:
            raise Unavailable(f"cannot open firewall 'libnftables': {error}") from error
        # The bindings this object has put in the maps, by (protocol, host port), so that a
        # caller sees what is published without a read per binding (of the kernel or a store).
        self._bindings: dict[tuple[str, int], set[Binding]] = {}
        # Whether the kernel deletes conntrack entries by a filter; found out at the first try.
        self._filtered_delete = True
        self._conntrack = conntrack.ConntrackChannel()

    def close(self) -> None:
        """Close the conntrack socket (libnftables' context closes with the object)."""
        self._conntrack.close()

    @property
    def bindings(self) -> frozenset[Binding]:
        """The port bindings in nsnet's maps, as this object applied them."""
        return frozenset(binding for same in self._bindings.values() for binding in same)

    def bindings_on(self, protocol: str, host_port: int) -> frozenset[Binding]:
        """The bindings in nsnet's maps of one host port, on any host address."""
        return frozenset(self._bindings.get((protocol, host_port), ()))

    def _remember(self, bindings: Iterable[Binding], present: bool) -> None:
        for binding in bindings:
            key = (binding.protocol, binding.host_port)
            if present:
                self._bindings.setdefault(key, set()).add(binding)
            elif key in self._bindings:
                self._bindings[key].discard(binding)
                if not self._bindings[key]:
                    del self._bindings[key]

    # Changes ----------------------------------------------------------------------------------

    def sync(self, networks: Iterable[BridgeNetwork], bindings: Iterable[Binding]) -> None:
        """Replace nsnet's tables with the whole ruleset (daemon start, repair)."""
        networks = list(networks)
        bindings = list(bindings)
        self._apply("sync", ruleset.render(networks, bindings))
        self._bindings = {}
        self._remember(bindings, present=True)
        log.info("firewall synced: %d networks, %d port bindings", len(networks), len(bindings))

    def add_network(self, network: BridgeNetwork) -> None:
        """Enforce ``network``'s options (masquerade, internal, icc)."""
        exists = self._table_exists(ruleset.BRIDGE)
        self._apply(f"add network {network.name}", ruleset.add_network(network, exists))
        log.debug("firewall: added network '%s' (bridge %s)", network.name, network.bridge)

    def remove_network(self, network: BridgeNetwork) -> None:
        """Remove ``network``'s elements; a network that is not there is no error."""
        exists = self._table_exists(ruleset.BRIDGE)
        self._apply(f"remove network {network.name}", ruleset.remove_network(network, exists))
        log.debug("firewall: removed network '%s' (bridge %s)", network.name, network.bridge)

    def add_bindings(self, bindings: Iterable[Binding]) -> None:
        """Publish ``bindings``, then forget UDP flows to their host ports (moby#8795)."""
        bindings = list(bindings)
        if not bindings:
            return
        self._apply("add bindings", ruleset.add_bindings(bindings))
        self._remember(bindings, present=True)
        self.flush_conntrack(binding for binding in bindings if binding.protocol == "udp")
        log.debug("firewall: published %s", ", ".join(map(str, bindings)))

    def remove_bindings(self, bindings: Iterable[Binding]) -> None:
        """Unpublish ``bindings`` (absent ones are no error), then forget their UDP flows."""
        bindings = list(bindings)
        if not bindings:
            return
        self._apply("remove bindings", ruleset.remove_bindings(bindings))
        self._remember(bindings, present=False)
        self.flush_conntrack(binding for binding in bindings if binding.protocol == "udp")
        log.debug("firewall: unpublished %s", ", ".join(map(str, bindings)))

    def delete_tables(self) -> None:
        """Remove nsnet's tables altogether (nothing else is touched)."""
        commands = []
        for family in (ruleset.INET, ruleset.BRIDGE):
            table = {"family": family, "name": ruleset.TABLE}
            commands += [{"add": {"table": table}}, {"delete": {"table": table}}]
        self._apply("delete tables", {"nftables": commands})
        self._bindings.clear()

    # Conntrack --------------------------------------------------------------------------------

    def flush_conntrack(self, bindings: Iterable[Binding]) -> None:
        """Delete the conntrack entries of flows to the bindings' host ports.

        A flow that started before a binding changed stays tied to its old destination (the
        host's socket, an ICMP error, or a removed container) until its entry goes.
        """
        bindings = list(bindings)
        if not bindings:
            return
        filters = []
        for binding in bindings:
            fields = {"proto": IP_PROTOCOL_NUMBERS[binding.protocol], "dport": binding.host_port}
            if binding.host_ip != ANY_ADDRESS:
                fields["daddr"] = str(binding.host_ip)
            filters.append((conntrack.ORIGINAL, fields))
        if self._delete_filtered(filters):
            return

        # (protocol, host port) -> host addresses, None for all. One dump per protocol,
        # matched here: a dump walks the whole conntrack table (shared by every namespace),
        # so a dump per binding made publishing 1,000 UDP ports take half a minute.
        wanted: dict[tuple[int, int], set[str | None]] = {}
        for binding in bindings:
            key = (IP_PROTOCOL_NUMBERS[binding.protocol], binding.host_port)
            address = None if binding.host_ip == ANY_ADDRESS else str(binding.host_ip)
            wanted.setdefault(key, set()).add(address)

        def to_host_port(entry) -> bool:
            flow = entry.tuple_orig
            addresses = wanted.get((flow.proto, flow.dport), ())
            return None in addresses or flow.daddr in addresses

        protocols = [NFCTAttrTuple(proto=protocol) for protocol in {key[0] for key in wanted}]
        self._delete_conntrack("host ports", protocols, [], to_host_port)

    def flush_container_conntrack(self, address: IPv4Address) -> None:
        """Delete every conntrack entry from or to a container's address.

        From it: its address is the original source; to it: the reply's source (a DNATed flow's
        original destination is the host's address).
        """
        text = str(address)
        if self._delete_filtered(
            [(conntrack.ORIGINAL, {"saddr": text}), (conntrack.REPLY, {"saddr": text})]
        ):
            return
        self._delete_conntrack(text, [NFCTAttrTuple(saddr=text)], [NFCTAttrTuple(saddr=text)])

    def _delete_filtered(self, filters: list[tuple[str, dict]]) -> bool:
        """Have the kernel delete the entries each (direction, fields) filter matches.

        False when the kernel cannot (the caller then dumps and deletes itself).
        """
        if not self._filtered_delete:
            return False
        try:
            for direction, fields in filters:
                self._conntrack.delete_matching(direction, **fields)
        except conntrack.FilterUnsupported as error:
            log.info("conntrack: %s; deleting entries after a dump instead", error)
            self._filtered_delete = False
            return False
        return True

    def flush_stale_conntrack(
        self, subnets: Iterable[IPv4Network], live: Iterable[IPv4Address]
    ) -> int:
        """Delete the entries of flows from or to an address of ``subnets`` that is not ``live``.

        A crash between a container's removal and its flush leaves its flows behind, and the
        address may go to a new container; reconcile calls this once at start. One dump of
        the whole table (this namespace's part of it), matched here.
        """
        subnets = list(subnets)
        live = set(live)

        def stale(entry) -> bool:
            for text in (entry.tuple_orig.saddr, entry.tuple_reply.saddr):
                try:
                    address = IPv4Address(text)
                except ValueError:
                    continue  # IPv6 or absent
                if address not in live and any(address in subnet for subnet in subnets):
                    return True
            return False

        if not subnets:
            return 0
        # None: an unfiltered dump.
        return self._delete_conntrack("stale container addresses", [None], [], stale)

    def _delete_conntrack(
        self,
        what: str,
        original: list[NFCTAttrTuple | None],
        reply: list[NFCTAttrTuple],
        matches: Callable[[Any], bool] | None = None,
    ) -> int:
        """Delete the entries that a filter lists (and ``matches``, when given)."""
        if not original and not reply:
            return 0
        deleted = 0
        try:
            with Conntrack() as conntrack:
                entries = []
                for tuple_filter in original:
                    entries += conntrack.dump_entries(tuple_orig=tuple_filter)
                for tuple_filter in reply:
                    entries += conntrack.dump_entries(tuple_reply=tuple_filter)
                if matches is not None:
                    entries = [entry for entry in entries if matches(entry)]

                for entry in entries:
                    try:
                        conntrack.entry("del", tuple_orig=entry.tuple_orig)
                        deleted += 1
                    except NetlinkError as error:
                        # Gone already: expired, or listed twice by two filters.
                        if error.code != errno.ENOENT:
                            raise
        except (NetlinkError, OSError) as error:
            raise Unavailable(f"cannot flush conntrack entries of '{what}': {error}") from error
        log.debug("conntrack: deleted %d entries of %s", deleted, what)
        return deleted

    # Inspection -------------------------------------------------------------------------------

    def state(self) -> FirewallState:
        """nsnet's tables as they are in the kernel: presence, rule and element counts."""
        tables = []
        rules = 0
        elements = {}
        for family in (ruleset.INET, ruleset.BRIDGE):
            if not self._table_exists(family):
                continue
            tables.append(f"{family} {ruleset.TABLE}")
            listing = self._list({"table": {"family": family, "name": ruleset.TABLE}})
            for item in listing:
                if "rule" in item:
                    rules += 1
                for kind in ("set", "map"):
                    if kind in item:
                        body = item[kind]
                        key = f"{family} {ruleset.TABLE} {body['name']}"
                        elements[key] = len(body.get("elem", []))
        return FirewallState(tables=tuple(tables), rules=rules, elements=elements)

    def foreign_forward_drop(self) -> str | None:
        """A warning naming each foreign chain on the forward hook whose policy is drop.

        Such a chain (iptables' ``FORWARD`` policy DROP, as Docker sets it) drops nsnet's
        forwarded traffic whatever nsnet's own table accepts. None when there is none.

        TODO: chains of iptables-legacy (x_tables) are invisible to nftables, so a FORWARD
        policy of DROP set through iptables-legacy goes unreported.
        """
        culprits = []
        for item in self._list({"chains": None}):
            chain = item.get("chain")
            if not chain or chain.get("hook") != "forward" or chain.get("policy") != "drop":
                continue
            if chain["table"] == ruleset.TABLE or chain["family"] not in _FORWARD_FAMILIES:
                continue
            culprits.append(f"'{chain['family']} {chain['table']} {chain['name']}'")
        if not culprits:
            return None
        return (
            f"foreign firewall chain {', '.join(culprits)} has a forward policy of drop: "
            "it drops traffic between containers and the outside, and published ports, "
            "unless it accepts them itself"
        )

    # libnftables ------------------------------------------------------------------------------

    def _apply(self, what: str, transaction: dict) -> None:
        code, _output, error = self._nft.json_cmd(transaction)
        if code != 0:
            raise Unavailable(f"cannot apply firewall change '{what}': {_clean(error)}")

    def _list(self, what: dict) -> list[dict]:
        code, output, error = self._nft.json_cmd({"nftables": [{"list": what}]})
        if code != 0:
            raise Unavailable(f"cannot list firewall '{next(iter(what))}': {_clean(error)}")
        return output.get("nftables", []) if output else []

    def _table_exists(self, family: str) -> bool:
        tables = self._list({"tables": None})
        return any(
            item["table"]["family"] == family and item["table"]["name"] == ruleset.TABLE
            for item in tables
            if "table" in item
        )


def _clean(error: str) -> str:
    # JSON input has no source positions: drop libnftables' "internal:0:0-0: " prefixes.
    lines = [line.removeprefix("internal:0:0-0: ").strip() for line in error.splitlines()]
    return "; ".join(line for line in lines if line) or "unknown error"
