"""The cluster store: overlay networks, VNIs, address claims and the endpoint registry in etcd.

Every decision two hosts could race on is one etcd transaction that only succeeds when the
keys it claims are absent: a network's name, VNI and subnet when it is created, and each
address when an endpoint joins. Address claims and endpoint records are written under this
host's lease, so that a host that dies (or is cut off longer than the TTL) loses them all at
once and the others forget its endpoints. A keep-alive thread renews the lease every third of
the TTL; when the lease has expired meanwhile it takes a new one and sets ``lease_renewed``,
and the engine registers its live endpoints again (``reclaim``).

The lease id is kept in the state directory, so a daemon restarted within the TTL keeps its
registrations instead of dropping them.
"""

import json
import logging
import threading
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from nsnet import ipam
from nsnet.cluster import etcd
from nsnet.cluster.config import ClusterConfig
from nsnet.cluster.etcd import Etcd
from nsnet.cluster.records import (
    KEYS,
    EndpointRecord,
    address_claim,
    claim_holder,
    dumps,
    network_from_json,
    network_to_json,
)
from nsnet.errors import Conflict, InvalidArgument, NotFound, NsnetError, Unavailable
from nsnet.models import IpamConfig, Network

log = logging.getLogger(__name__)

OPT_VXLANID_LIST = "com.docker.network.driver.overlay.vxlanid_list"
FIRST_VNI = 4096  # as Docker's overlay driver
LAST_VNI = (1 << 24) - 1
OVERLAY_POOL = IPv4Network("10.0.0.0/8")  # Docker's default for overlay networks, in /24s
OVERLAY_SUBNET_PREFIXLEN = 24
REQUEST_TIMEOUT = 5.0
CLAIM_ATTEMPTS = 64  # address races lost in a row before giving up
CREATE_ATTEMPTS = 16


class ClusterStore:
    """This host's view of, and writes to, the shared store."""

    def __init__(self, config: ClusterConfig, lease_file: Path) -> None:
        """The store ``config`` names; ``lease_file`` keeps this host's lease id for the next run.

        Nothing is sent until ``open``.
        """
        self.config = config
        self.lease_file = lease_file
        self.etcd = self._connect()  # the engine thread's connection
        self.lease = 0
        self.lease_renewed = threading.Event()  # set when registrations must be made again
        # As the keep-alive last found it: retries wait for it rather than block on timeouts.
        self.reachable = True
        self.on_reconnect: Callable[[], None] | None = None  # the agent restarts its watch
        self._stopping = threading.Event()
        self._keepalive: threading.Thread | None = None

    @property
    def host_address(self) -> IPv4Address:
        """This host's advertise address, at which the other hosts reach it."""
        return self.config.advertise_address

    def _connect(self) -> Etcd:
        timeout = min(REQUEST_TIMEOUT, max(1.0, self.config.ttl / 3))
        return Etcd(self.config.store_host, self.config.store_port, timeout)

    # Life cycle

    def open(self) -> None:
        """Reach the store, take (or keep) this host's lease, start renewing it.

        A store that cannot be reached now is no reason not to start, as with dockerd: the
        keep-alive thread joins as soon as it answers (and sets ``lease_renewed``), and until
        then every request that needs the lease is refused with Unavailable.
        """
        try:
            self._join(self.etcd)
        except Unavailable as error:
            log.warning("cluster: starting without the store (%s); joining when it answers", error)
            self.reachable = False
        self._keepalive = threading.Thread(
            target=self._keep_alive, name="nsnet-cluster-lease", daemon=True
        )
        self._keepalive.start()

    def _join(self, connection: Etcd) -> None:
        connection.status()
        self.lease = self._previous_lease(connection) or self._new_lease_on(connection)
        self._put_host_record(connection)
        log.info(
            "cluster: joined %s as %s (lease %x, TTL %d s)",
            self.config.store_url,
            self.host_address,
            self.lease,
            self.config.ttl,
        )

    def _require_lease(self) -> None:
        """Refuse what must be tied to this host's lease before the host has one."""
        if not self.lease:
            raise Unavailable(
                f"cannot reach the cluster store {self.config.store_url}: this host has not "
                "joined it yet"
            )

    def close(self) -> None:
        """Stop renewing; the lease stays, so a restart within the TTL keeps registrations."""
        self._stopping.set()
        if self._keepalive is not None:
            self._keepalive.join(timeout=REQUEST_TIMEOUT + 1)
        self.etcd.close()

    def _previous_lease(self, connection: Etcd) -> int:
        try:
            saved = json.loads(self.lease_file.read_text())
        except (OSError, ValueError):
            return 0
        if saved.get("store") != self.config.store_url or saved.get("host") != str(
            self.host_address
        ):
            return 0
        lease = int(saved.get("lease", 0))
        if saved.get("ttl") != self.config.ttl:
            # A lease's TTL is fixed when granted: a new TTL needs a new lease. Registrations
            # move to it as they are made again; the old one expires holding nothing.
            if lease:
                log.info(
                    "cluster: the TTL is now %d s; taking a new lease for it", self.config.ttl
                )
            return 0
        if lease and connection.time_to_live(lease) > 0:
            log.info("cluster: lease %x of the previous run is still alive; keeping it", lease)
            return lease
        return 0

    def _put_host_record(self, connection: Etcd) -> None:
        record = dumps({"name": self.config.node_name, "address": str(self.host_address)})
        connection.transaction([], [etcd.put(KEYS.host(self.host_address), record, self.lease)])

    def _keep_alive(self) -> None:
        connection = self._connect()
        interval = max(0.5, self.config.ttl / 3)
        reachable = self.reachable
        try:
            while not self._stopping.wait(interval):
                try:
                    if not self.lease:  # started while the store was unreachable
                        self._join(connection)
                        self.lease_renewed.set()
                        reachable = self.reachable = True
                        if self.on_reconnect is not None:
                            self.on_reconnect()
                        continue
                    ttl = connection.keepalive(self.lease)
                    if ttl <= 0:
                        log.warning(
                            "cluster: lease %x expired (cut off from %s longer than the TTL of "
                            "%d s); the other hosts have dropped this host's endpoints and "
                            "addresses; registering them again",
                            self.lease,
                            self.config.store_url,
                            self.config.ttl,
                        )
                        self.lease = self._new_lease_on(connection)
                        self._put_host_record(connection)
                        self.lease_renewed.set()
                except NsnetError as error:
                    if reachable:
                        log.warning("cluster: cannot renew the lease: %s", error)
                    elif not self.lease:
                        log.debug("cluster: cannot join the store yet: %s", error)
                    reachable = self.reachable = False
                    continue
                if not reachable:
                    log.info("cluster: %s reachable again", self.config.store_url)
                    reachable = self.reachable = True
                    if self.on_reconnect is not None:
                        self.on_reconnect()
        finally:
            connection.close()

    def _new_lease_on(self, connection: Etcd) -> int:
        """A new lease, remembered in the state directory for the next run."""
        lease = connection.grant(self.config.ttl)
        self.lease_file.write_text(
            dumps(
                {
                    "lease": lease,
                    "store": self.config.store_url,
                    "host": str(self.host_address),
                    "ttl": self.config.ttl,
                }
            )
        )
        return lease

    # Networks

    def networks(self) -> list[Network]:
        """Every overlay network of the cluster."""
        return self._networks()[1]

    def _networks(self) -> tuple[int, list[Network]]:
        """The store's revision and every overlay network of the cluster."""
        revision, items = self.etcd.range(KEYS.networks)
        networks = []
        for item in items:
            try:
                networks.append(network_from_json(item.value))
            except (ValueError, KeyError, TypeError) as error:
                log.warning("cluster: ignoring unreadable network %s: %s", item.key, error)
        return revision, networks

    def create_network(
        self,
        network: Network,
        requested: IpamConfig | None,
        vni: int | None,
        local_subnets: Iterable[IPv4Network],
    ) -> Network:
        """Record a new overlay network: its name, VNI and subnet are claimed in one transaction.

        ``network`` carries everything but its IPAM and VNI, chosen here: ``requested`` (the
        user's subnet) or the first free /24 of 10.0.0.0/8, and ``vni`` or the lowest free
        from 4096 on. Raises Conflict when the name, the VNI or the subnet is taken.

        The choice is made from the networks as read at one revision, and the transaction
        holds only if no network was recorded since: two hosts racing with overlapping subnets
        of different sizes (10.1.0.0/16 and 10.1.2.0/24) cannot both win.
        """
        local_subnets = list(local_subnets)
        for _ in range(CREATE_ATTEMPTS):
            revision, existing = self._networks()
            if any(other.name == network.name for other in existing):
                raise Conflict(f"network with name {network.name} already exists")
            taken_subnets = [config.subnet for other in existing for config in other.ipam]
            config = self._choose_ipam(network.name, requested, taken_subnets, local_subnets)
            chosen_vni = vni or self._free_vni(existing)
            network.ipam = [config]
            network.options[OPT_VXLANID_LIST] = str(chosen_vni)

            claimed = [
                KEYS.name(network.name),
                KEYS.vni(chosen_vni),
                KEYS.subnet(config.subnet),
                KEYS.network(network.id),
            ]
            values = [network.id, network.id, network.id, network_to_json(network)]
            succeeded, _ = self.etcd.transaction(
                [
                    etcd.prefix_unchanged_since(KEYS.networks, revision),
                    *[etcd.absent(key) for key in claimed],
                ],
                [etcd.put(key, value) for key, value in zip(claimed, values, strict=True)],
            )
            if succeeded:
                log.info(
                    "cluster: network %s recorded (VNI %d, subnet %s)",
                    network.name,
                    chosen_vni,
                    config.subnet,
                )
                return network
            if self.etcd.get(KEYS.name(network.name)) is not None:
                raise Conflict(f"network with name {network.name} already exists")
            if vni is not None and self.etcd.get(KEYS.vni(vni)) is not None:
                raise Conflict(
                    f"cannot create network '{network.name}': VNI {vni} is used by another network"
                )
            if requested is not None and self.etcd.get(KEYS.subnet(config.subnet)) is not None:
                raise Conflict(
                    f"cannot create network '{network.name}': subnet {config.subnet} is used "
                    "by another network"
                )
            # Another host recorded a network meanwhile: choose again from the new state.
        raise Unavailable(
            f"cannot create network '{network.name}': lost {CREATE_ATTEMPTS} races for a VNI "
            "and subnet"
        )

    @staticmethod
    def _choose_ipam(
        name: str,
        requested: IpamConfig | None,
        taken: list[IPv4Network],
        local: list[IPv4Network],
    ) -> IpamConfig:
        if requested is not None:
            config = ipam.complete(requested, name)
            # Docker 20.10 shows a gateway in inspect only when it was asked for; every host
            # reads that from the record.
            config.gateway_chosen = requested.gateway is None
            for other in taken + local:
                if config.subnet.overlaps(other):
                    raise Conflict(
                        f"cannot create network '{name}': subnet {config.subnet} overlaps with "
                        f"{other} of another network"
                    )
            return config
        for subnet in OVERLAY_POOL.subnets(new_prefix=OVERLAY_SUBNET_PREFIXLEN):
            if not any(subnet.overlaps(other) for other in taken + local):
                return ipam.complete(IpamConfig(subnet=subnet), name)
        raise Conflict(f"cannot create network '{name}': no free subnet left in {OVERLAY_POOL}")

    def _free_vni(self, existing: list[Network]) -> int:
        _, items = self.etcd.range(KEYS.vnis, keys_only=True)
        taken = {int(item.key.rsplit("/", 1)[1]) for item in items}
        taken |= {vni_of(network) for network in existing}
        for vni in range(FIRST_VNI, LAST_VNI + 1):
            if vni not in taken:
                return vni
        raise Conflict("cannot choose a VNI: every VNI is taken")

    def delete_network(self, network: Network) -> None:
        """Remove an overlay network; refused while any host has an endpoint on it.

        The removal holds only if the network's registry is empty when it is applied, and an
        endpoint is registered only while its network exists (``register``), so an endpoint
        joining meanwhile either stops the removal or fails to join.
        """
        self._refuse_with_endpoints(network)
        subnets = [KEYS.subnet(config.subnet) for config in network.ipam]
        succeeded, _ = self.etcd.transaction(
            [etcd.prefix_empty(f"{KEYS.endpoints}{network.id}/")],
            [
                etcd.delete(KEYS.network(network.id)),
                etcd.delete(KEYS.name(network.name)),
                etcd.delete(KEYS.vni(vni_of(network))),
                *[etcd.delete(key) for key in subnets],
                etcd.delete(f"{KEYS.addresses}{network.id}/", prefix=True),
            ],
        )
        if not succeeded:  # an endpoint joined between the check and the removal
            self._refuse_with_endpoints(network)
            raise Conflict(
                f"error while removing network: network {network.name} id {network.id} is "
                "being joined by an endpoint"
            )
        log.info("cluster: network %s removed", network.name)

    def _refuse_with_endpoints(self, network: Network) -> None:
        records = self.endpoints(network.id)
        if records:
            names = ", ".join(
                f"{record.container_name} on {record.host_address}" for record in records
            )
            raise Conflict(
                f"error while removing network: network {network.name} id {network.id} has "
                f"active endpoints ({names})"
            )

    # Addresses

    def claimed_addresses(self, network_id: str) -> set[int]:
        """The addresses claimed on a network by every host, as integers."""
        prefix = f"{KEYS.addresses}{network_id}/"
        _, items = self.etcd.range(prefix, keys_only=True, action="read the network's addresses")
        return {int(IPv4Address(item.key.rsplit("/", 1)[1])) for item in items}

    def claim_address(
        self, network: Network, endpoint_id: str, requested: IPv4Address | None
    ) -> IPv4Address:
        """Claim ``requested``, or the lowest free address, for an endpoint of this host."""
        self._require_lease()
        config = network.ipam[0]
        value = address_claim(endpoint_id, self.host_address)
        for _ in range(CLAIM_ATTEMPTS):
            allocated = self.claimed_addresses(network.id)
            if requested is not None:
                ipam.check_static(config, requested, allocated)
                address = requested
            else:
                address = ipam.next_free(config, allocated)
            key = KEYS.address(network.id, address)
            succeeded, _ = self.etcd.transaction(
                [etcd.absent(key)], [etcd.put(key, value, self.lease)]
            )
            if succeeded:
                return address
        raise Unavailable(
            f"cannot allocate an address on network '{network.name}': lost {CLAIM_ATTEMPTS} "
            "races in a row"
        )

    def reclaim_address(self, network: Network, endpoint_id: str, address: IPv4Address) -> None:
        """Hold ``address`` again under the current lease (after a restart or an expiry).

        Raises Conflict when another endpoint holds it now.
        """
        self._require_lease()
        key = KEYS.address(network.id, address)
        value = address_claim(endpoint_id, self.host_address)
        succeeded, responses = self.etcd.transaction(
            [etcd.absent(key)],
            [etcd.put(key, value, self.lease)],
            [etcd.get(key)],
        )
        if succeeded:
            return
        items = responses[0].get("response_range", {}).get("kvs", []) if responses else []
        if items:
            holder = claim_holder(etcd.decode(items[0].get("value")))
            if holder[0] != endpoint_id:
                raise Conflict(
                    f"address {address} on network '{network.name}' is held by endpoint "
                    f"{holder[0][:12]} of host {holder[1]}"
                )
        # Ours already (perhaps under an older lease): attach it to the current one.
        self.etcd.transaction([etcd.value_is(key, value)], [etcd.put(key, value, self.lease)])

    def release_address(self, network_id: str, address: IPv4Address, endpoint_id: str) -> None:
        """Give an address back, unless another endpoint holds it now."""
        key = KEYS.address(network_id, address)
        self.etcd.transaction(
            [etcd.value_is(key, address_claim(endpoint_id, self.host_address))],
            [etcd.delete(key)],
        )

    # Endpoint registry

    def register(self, record: EndpointRecord) -> None:
        """Write an endpoint's record in the registry, under this host's lease.

        Raises NotFound when its network is no longer in the cluster (removed by another host).
        """
        self._require_lease()
        succeeded, _ = self.etcd.transaction(
            [etcd.present(KEYS.network(record.network_id))],
            [etcd.put(record.key, record.to_json(), self.lease)],
        )
        if not succeeded:
            raise NotFound(f"network {record.network_name} was removed from the cluster")

    def unregister(self, network_id: str, endpoint_id: str) -> None:
        """Delete an endpoint's record from the registry; a missing one is no error."""
        self.etcd.delete(KEYS.endpoint(network_id, endpoint_id))

    def endpoints(self, network_id: str | None = None) -> list[EndpointRecord]:
        """The registered endpoints of every host: of one network, or of all."""
        _, records = self.registry(network_id)
        return records

    def registry(self, network_id: str | None = None) -> tuple[int, list[EndpointRecord]]:
        """The store's revision and the endpoints of one network (or of all)."""
        prefix = KEYS.endpoints + (f"{network_id}/" if network_id else "")
        revision, items = self.etcd.range(prefix)
        records = []
        for item in items:
            try:
                records.append(EndpointRecord.from_json(item.value))
            except (ValueError, KeyError, TypeError) as error:
                log.warning("cluster: ignoring unreadable endpoint %s: %s", item.key, error)
        return revision, records

    def hosts(self) -> dict[str, str]:
        """Live hosts: advertise address -> name."""
        _, items = self.etcd.range(KEYS.hosts)
        found = {}
        for item in items:
            try:
                document = json.loads(item.value)
                found[document["address"]] = document.get("name", "")
            except (ValueError, KeyError):
                continue
        return found


def vni_of(network: Network) -> int:
    """The VNI of an overlay network (Docker keeps it in this option)."""
    text = network.options.get(OPT_VXLANID_LIST, "")
    try:
        return int(text.split(",")[0])
    except ValueError as error:
        raise InvalidArgument(f"network '{network.name}' has no valid VNI ('{text}')") from error


def parse_vni(text: str, name: str) -> int:
    """The VNI asked for with ``-o com.docker.network.driver.overlay.vxlanid_list=N``."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if len(parts) != 1 or not parts[0].isdigit() or not 1 <= int(parts[0]) <= LAST_VNI:
        raise InvalidArgument(
            f"cannot create network '{name}': {OPT_VXLANID_LIST} must be one VNI from 1 to "
            f"{LAST_VNI}, not '{text}'"
        )
    return int(parts[0])
