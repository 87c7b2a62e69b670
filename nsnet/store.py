"""The local store: one SQLite file under the state directory.

Networks, containers and endpoints are stored as JSON documents beside the columns that are
looked up or must be unique; IPAM allocations are rows of their own, so that the primary key
makes a double allocation impossible. Each engine operation runs in one transaction
(``Store.transaction``), committed only after the kernel work succeeded.
"""

import contextlib
import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from nsnet.errors import Conflict, Unavailable
from nsnet.models import Container, Endpoint, IpamConfig, Network, PortBinding

SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES networks(id),
    container_id TEXT NOT NULL REFERENCES containers(id),
    host_ifname TEXT NOT NULL UNIQUE,
    document TEXT NOT NULL,
    UNIQUE (network_id, container_id)
);
CREATE INDEX IF NOT EXISTS endpoints_by_container ON endpoints(container_id);
CREATE TABLE IF NOT EXISTS addresses (
    network_id TEXT NOT NULL REFERENCES networks(id),
    address INTEGER NOT NULL,
    owner TEXT NOT NULL,
    PRIMARY KEY (network_id, address)
);
"""


def _encode(value):
    if isinstance(value, IPv4Address | IPv4Network):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__}")


def _dump(record) -> str:
    return json.dumps(dataclasses.asdict(record), default=_encode, sort_keys=True)


def _network(document: str) -> Network:
    fields = json.loads(document)
    fields["ipam"] = [
        IpamConfig(
            subnet=IPv4Network(config["subnet"]),
            gateway=IPv4Address(config["gateway"]) if config["gateway"] else None,
            ip_range=IPv4Network(config["ip_range"]) if config["ip_range"] else None,
            aux_addresses={k: IPv4Address(v) for k, v in config["aux_addresses"].items()},
            gateway_chosen=config.get("gateway_chosen", False),
        )
        for config in fields["ipam"]
    ]
    return Network(**fields)


# Where rows written before the field existed keep a process's start time.
LEGACY_START_TIME_LABEL = "nsnet.process-start-time"


def _container(document: str) -> Container:
    fields = json.loads(document)
    fields["ports"] = [PortBinding(**binding) for binding in fields["ports"]]
    if "process_start_time" not in fields:
        legacy = fields.get("labels", {}).pop(LEGACY_START_TIME_LABEL, None)
        fields["process_start_time"] = int(legacy) if legacy else 0
    return Container(**fields)


def _endpoint(document: str) -> Endpoint:
    fields = json.loads(document)
    fields["address"] = IPv4Address(fields["address"])
    fields["gateway"] = IPv4Address(fields["gateway"]) if fields["gateway"] else None
    return Endpoint(**fields)


class Store:
    """SQLite-backed records of networks, containers, endpoints and address allocations."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as error:
            raise Unavailable(f"cannot open store '{path}': {error}") from error
        self._depth = 0

    def close(self) -> None:
        """Close the database connection; the store cannot be used after it."""
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic change; nested uses join the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._execute("ROLLBACK")
            raise
        else:
            self._execute("COMMIT")
        finally:
            self._depth = 0

    def _execute(self, sql: str, parameters: tuple = ()) -> sqlite3.Cursor:
        """Run one statement; sqlite's errors become nsnet's, keeping the cause."""
        try:
            return self.db.execute(sql, parameters)
        except sqlite3.IntegrityError as error:
            raise Conflict(f"the store refused a change: {error}") from error
        except sqlite3.Error as error:
            raise Unavailable(f"the store is unusable: {error}") from error

    def _write(self, sql: str, parameters: tuple, what: str) -> None:
        try:
            self.db.execute(sql, parameters)
        except sqlite3.IntegrityError as error:
            raise Conflict(f"cannot store {what}: {error}") from error
        except sqlite3.Error as error:
            raise Unavailable(f"cannot store {what}: {error}") from error

    # Networks

    def put_network(self, network: Network) -> None:
        """Insert a network's record, or update the one with its id.

        Conflict when another network has its name.
        """
        self._write(
            # An upsert on the id alone: OR REPLACE would silently delete another row that
            # holds the same name instead of refusing it.
            "INSERT INTO networks (id, name, document) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET name = excluded.name, document = excluded.document",
            (network.id, network.name, _dump(network)),
            f"network '{network.name}'",
        )

    def delete_network(self, network_id: str) -> None:
        """Delete a network's record and every address allocated on it.

        Its endpoints must be deleted first: the foreign key refuses otherwise (Conflict).
        """
        self._execute("DELETE FROM addresses WHERE network_id = ?", (network_id,))
        self._execute("DELETE FROM networks WHERE id = ?", (network_id,))

    def networks(self) -> list[Network]:
        """Every network, in the order they were first stored."""
        rows = self._execute("SELECT document FROM networks ORDER BY rowid")
        return [_network(document) for (document,) in rows]

    def network(self, network_id: str) -> Network | None:
        """The network whose full id is ``network_id``, or None."""
        row = self._execute("SELECT document FROM networks WHERE id = ?", (network_id,))
        found = row.fetchone()
        return _network(found[0]) if found else None

    # Containers

    def put_container(self, container: Container) -> None:
        """Insert a container's record, or update the one with its id.

        Conflict when another container has its name.
        """
        self._write(
            "INSERT INTO containers (id, name, document) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET name = excluded.name, document = excluded.document",
            (container.id, container.name, _dump(container)),
            f"container '{container.name}'",
        )

    def delete_container(self, container_id: str) -> None:
        """Delete a container's record.

        Its endpoints must be deleted first: the foreign key refuses otherwise (Conflict).
        """
        self._execute("DELETE FROM containers WHERE id = ?", (container_id,))

    def containers(self) -> list[Container]:
        """Every container, in the order they were first stored."""
        rows = self._execute("SELECT document FROM containers ORDER BY rowid")
        return [_container(document) for (document,) in rows]

    def containers_sharing(self, container_id: str) -> list[str]:
        """The names of the containers that join ``container_id``'s namespace (container:ID).

        Read by SQLite from the documents, without decoding every container here.
        """
        rows = self._execute(
            "SELECT name FROM containers WHERE json_extract(document, '$.network_mode') = ?",
            (f"container:{container_id}",),
        )
        return [name for (name,) in rows]

    def container_namespaces(self) -> list[tuple[str, str, str, int]]:
        """Every container's (name, netns_path, cni_id, cni_netns_inode), read by SQLite."""
        rows = self._execute(
            "SELECT name, json_extract(document, '$.netns_path'),"
            " json_extract(document, '$.cni_id'), json_extract(document, '$.cni_netns_inode')"
            " FROM containers"
        )
        return [(name, path or "", cni_id or "", inode or 0) for name, path, cni_id, inode in rows]

    def container(self, container_id: str) -> Container | None:
        """The container whose full id is ``container_id``, or None."""
        row = self._execute("SELECT document FROM containers WHERE id = ?", (container_id,))
        found = row.fetchone()
        return _container(found[0]) if found else None

    def container_names(self) -> dict[str, str]:
        """Every container's name, mapped to its id."""
        return dict(self._execute("SELECT name, id FROM containers"))

    def container_id_named(self, name: str) -> str | None:
        """The id of the container called ``name``, or None (one indexed lookup)."""
        row = self._execute("SELECT id FROM containers WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def containers_with_id_prefix(self, prefix: str, limit: int = 2) -> list[Container]:
        """Up to ``limit`` containers whose id starts with ``prefix`` (ids are lowercase hex)."""
        if not prefix or any(char not in "0123456789abcdef" for char in prefix):
            return []
        # A range on the primary key: every id from the prefix up to the prefix's successor.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        rows = self._execute(
            "SELECT document FROM containers WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
            (prefix, upper, limit),
        )
        return [_container(document) for (document,) in rows]

    # Endpoints

    def put_endpoint(self, endpoint: Endpoint) -> None:
        """Insert an endpoint's record, or update the one with its id.

        Conflict when its ``host_ifname`` is taken, when its container already has an endpoint on
        its network, or when either has no record.
        """
        self._write(
            "INSERT INTO endpoints"
            " (id, network_id, container_id, host_ifname, document) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET network_id = excluded.network_id,"
            " container_id = excluded.container_id, host_ifname = excluded.host_ifname,"
            " document = excluded.document",
            (
                endpoint.id,
                endpoint.network_id,
                endpoint.container_id,
                endpoint.host_ifname,
                _dump(endpoint),
            ),
            f"endpoint '{endpoint.host_ifname}'",
        )

    def delete_endpoint(self, endpoint_id: str) -> None:
        """Delete an endpoint's record; its address is released apart (``release``)."""
        self._execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,))

    def endpoints(
        self, network_id: str | None = None, container_id: str | None = None
    ) -> list[Endpoint]:
        """The endpoints of one network, of one container, of both, or of everything.

        In the order they were first stored, which is the order they joined.
        """
        sql = "SELECT document FROM endpoints"
        clauses, parameters = [], []
        if network_id is not None:
            clauses.append("network_id = ?")
            parameters.append(network_id)
        if container_id is not None:
            clauses.append("container_id = ?")
            parameters.append(container_id)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = self._execute(sql + " ORDER BY rowid", parameters)
        return [_endpoint(document) for (document,) in rows]

    def host_ifnames(self) -> set[str]:
        """The ``host_ifname`` of every endpoint: the veth names nsnet holds."""
        return {name for (name,) in self._execute("SELECT host_ifname FROM endpoints")}

    def host_ifname_taken(self, ifname: str) -> bool:
        """Whether an endpoint has ``ifname`` as its host end (one indexed lookup)."""
        row = self._execute("SELECT 1 FROM endpoints WHERE host_ifname = ?", (ifname,))
        return row.fetchone() is not None

    def endpoint_count(self, network_id: str) -> int:
        """How many endpoints the network has on this host."""
        row = self._execute("SELECT count(*) FROM endpoints WHERE network_id = ?", (network_id,))
        return row.fetchone()[0]

    # Address allocations

    def allocated(self, network_id: str) -> set[int]:
        """The addresses allocated on the network, as integers (what ``ipam`` takes)."""
        rows = self._execute("SELECT address FROM addresses WHERE network_id = ?", (network_id,))
        return {address for (address,) in rows}

    def allocate(self, network_id: str, address: IPv4Address, owner: str) -> None:
        """Record ``address`` as allocated on the network to ``owner``, an endpoint id.

        Conflict when the address is allocated already, or the network has no record.
        """
        self._write(
            "INSERT INTO addresses (network_id, address, owner) VALUES (?, ?, ?)",
            (network_id, int(address), owner),
            f"address {address}",
        )

    def address_owner(self, network_id: str, address: IPv4Address) -> str | None:
        """The endpoint id that holds ``address`` on the network, or None when it is free."""
        row = self._execute(
            "SELECT owner FROM addresses WHERE network_id = ? AND address = ?",
            (network_id, int(address)),
        ).fetchone()
        return row[0] if row else None

    def release(self, network_id: str, address: IPv4Address) -> None:
        """Free an address of the network; one that is not allocated is no error."""
        self._execute(
            "DELETE FROM addresses WHERE network_id = ? AND address = ?",
            (network_id, int(address)),
        )
