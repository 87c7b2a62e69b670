"""The name index: which names resolve to which addresses, network by network.

An entry is one endpoint: the network it is on (id and name), the names it answers to there
(container name, aliases), its address, and its origin (``"local"`` for this host's endpoints;
another host's name for endpoints learned from an overlay's registry). Names are scoped by
network: a lookup sees only entries on networks the asker is attached to.

As in Docker, a name may also be qualified by its network: ``web.backend`` is ``web`` on the
asker's network ``backend``. Names and network names may themselves hold dots, so for
``a.b.c`` the lookup tries, in Docker's order, the whole name on every network of the asker,
then ``a.b`` on its network ``c``, then ``a`` on its network ``b.c``; the first that has
addresses answers.

Lookups and reverse lookups are dictionary reads keyed by (network id, name) and
(network id, address), so their cost depends on the asker's few networks and the name's few
labels, not on the number of endpoints. The index is shared between the engine's thread and
the cluster agent's (writes) and the DNS server's loop (reads), so every method takes one lock.
"""

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address

log = logging.getLogger(__name__)

LOCAL_ORIGIN = "local"


def normalize_name(name: str) -> str:
    """A name as the index keys it: lower case, without the root's trailing dot."""
    return name.rstrip(".").lower()


@dataclass(frozen=True)
class IndexEntry:
    """One endpoint as the index knows it."""

    network_id: str
    endpoint_id: str
    names: tuple[str, ...]  # normalized, in the order given
    network_name: str  # normalized; "" when not given (no qualified names then)
    address: IPv4Address
    ptr_name: str  # the name a PTR query for ``address`` answers
    origin: str


class NameIndex:
    """Names and addresses of endpoints, scoped by network."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, IndexEntry] = {}
        # (network id, name) -> endpoint id -> address; a dict keeps insertion order and makes
        # removing one endpoint of a shared alias O(1).
        self._by_name: dict[tuple[str, str], dict[str, IPv4Address]] = {}
        # (network id, address) -> endpoint id -> PTR name; two entries may briefly share an
        # address (a remote endpoint learned before the local one left).
        self._by_address: dict[tuple[str, IPv4Address], dict[str, str]] = {}
        # network id -> its normalized name, and how many entries are on it (to forget it).
        self._network_names: dict[str, str] = {}
        self._network_entries: dict[str, int] = {}

    def add(
        self,
        network_id: str,
        endpoint_id: str,
        names: Iterable[str],
        address: IPv4Address | str,
        *,
        network_name: str | None = None,
        ptr_name: str | None = None,
        origin: str = LOCAL_ORIGIN,
    ) -> None:
        """Make ``names`` resolve to ``address`` for askers on ``network_id``.

        With ``network_name``, each name also resolves as ``name.network_name`` there. Adding
        an endpoint id that is already indexed replaces its entry (idempotent re-add after a
        restart). ``ptr_name`` defaults to the first name.
        """
        address = IPv4Address(address)
        normalized = tuple(dict.fromkeys(normalize_name(name) for name in names if name))
        if not normalized:
            raise ValueError(f"endpoint '{endpoint_id}' has no name to index")
        entry = IndexEntry(
            network_id=network_id,
            endpoint_id=endpoint_id,
            names=normalized,
            network_name=normalize_name(network_name or ""),
            address=address,
            ptr_name=(ptr_name or normalized[0]).rstrip("."),
            origin=origin,
        )

        with self._lock:
            self._remove_locked(endpoint_id)
            self._entries[endpoint_id] = entry
            for name in normalized:
                self._by_name.setdefault((network_id, name), {})[endpoint_id] = address
            self._by_address.setdefault((network_id, address), {})[endpoint_id] = entry.ptr_name
            if entry.network_name:
                self._network_names[network_id] = entry.network_name
            self._network_entries[network_id] = self._network_entries.get(network_id, 0) + 1
        log.debug(
            "dns: network %s: %s -> %s (endpoint %s, %s)",
            network_id[:12],
            ", ".join(normalized),
            address,
            endpoint_id[:12],
            origin,
        )

    def remove(self, endpoint_id: str) -> bool:
        """Forget an endpoint; return whether it was indexed (a missing one is no error)."""
        with self._lock:
            removed = self._remove_locked(endpoint_id)
        if removed:
            log.debug("dns: forgot endpoint %s", endpoint_id[:12])
        return removed

    def remove_origin(self, origin: str) -> int:
        """Forget every endpoint of one origin (a host that left); return how many."""
        with self._lock:
            doomed = [
                entry.endpoint_id for entry in self._entries.values() if entry.origin == origin
            ]
            for endpoint_id in doomed:
                self._remove_locked(endpoint_id)
        return len(doomed)

    def _remove_locked(self, endpoint_id: str) -> bool:
        entry = self._entries.pop(endpoint_id, None)
        if entry is None:
            return False
        for name in entry.names:
            key = (entry.network_id, name)
            holders = self._by_name.get(key)
            if holders is not None:
                holders.pop(endpoint_id, None)
                if not holders:
                    del self._by_name[key]
        key = (entry.network_id, entry.address)
        owners = self._by_address.get(key)
        if owners is not None:
            owners.pop(endpoint_id, None)
            if not owners:
                del self._by_address[key]
        remaining = self._network_entries[entry.network_id] - 1
        if remaining:
            self._network_entries[entry.network_id] = remaining
        else:
            del self._network_entries[entry.network_id]
            self._network_names.pop(entry.network_id, None)
        return True

    def lookup(self, asker_network_ids: Iterable[str], name: str) -> list[IPv4Address]:
        """Addresses of ``name`` on the asker's networks, each once, in a stable order.

        ``name`` may be qualified by one of the asker's networks (``web.backend``); the whole
        name, as a name of its own, goes first.
        """
        wanted = normalize_name(name)
        networks = list(dict.fromkeys(asker_network_ids))
        with self._lock:
            found = self._holders_locked(networks, wanted)
            if found or "." not in wanted:
                return found

            by_name = {
                self._network_names[network_id]: network_id
                for network_id in reversed(networks)  # the asker's first network wins a tie
                if network_id in self._network_names
            }
            # Docker's order: a.b.c on network d, then a.b on network c.d, then a on b.c.d.
            end = len(wanted)
            while (dot := wanted.rfind(".", 0, end)) > 0:
                network_id = by_name.get(wanted[dot + 1 :])
                if network_id is not None:
                    found = self._holders_locked([network_id], wanted[:dot])
                    if found:
                        return found
                end = dot
        return []

    def _holders_locked(self, network_ids: Iterable[str], name: str) -> list[IPv4Address]:
        found: dict[IPv4Address, None] = {}
        for network_id in network_ids:
            holders = self._by_name.get((network_id, name))
            if holders:
                found.update(dict.fromkeys(holders.values()))
        return list(found)

    def reverse(self, asker_network_ids: Iterable[str], address: IPv4Address | str) -> str | None:
        """The PTR name of ``address`` on the asker's networks, or None."""
        address = IPv4Address(address)
        with self._lock:
            for network_id in asker_network_ids:
                owners = self._by_address.get((network_id, address))
                if owners:
                    return next(iter(owners.values()))
        return None

    def entries(self) -> list[IndexEntry]:
        """Every entry (a copy), for inspection and tests."""
        with self._lock:
            return list(self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, endpoint_id: object) -> bool:
        with self._lock:
            return endpoint_id in self._entries
