"""The ``overlay`` driver: one L2 network across hosts, each frame carried in VXLAN over UDP.

On a host with members, a network's data plane is a namespace of its own (a file
``<run>/overlay/<network id>``, kept apart from the host's routing as Docker does) holding a
bridge ``br0`` and a VXLAN device ``vxlan0``. The VXLAN device is created from the host's
namespace, so its UDP socket (port 4789) sends and receives on the underlay, and lands in the
overlay's namespace in the same message. Each container's endpoint is a veth pair from
``br0`` to the container's ``ethN``.

Nothing is learned from the wire: for every remote endpoint in the registry the VXLAN device
gets exactly one FDB entry (its MAC -> its host's address) and one permanent neighbour entry
(its address -> its MAC), which the device's proxy uses to answer ARP locally. There is no
all-zero flood entry, so broadcasts never leave the host. The view of remote endpoints is fed
by the cluster agent's watch thread; the engine's thread creates and removes data planes.
One lock serialises both, so an entry is programmed exactly once whichever comes first.

The data plane exists only while the host has members: the first endpoint makes it, the last
one to leave removes it. Its MTU is the underlay's minus 50 bytes (VXLAN over IPv4), or
``-o com.docker.network.driver.mtu``.
"""

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from nsnet import failpoints
from nsnet.cluster.config import ClusterConfig
from nsnet.cluster.records import EndpointRecord
from nsnet.cluster.store import OPT_VXLANID_LIST, parse_vni, vni_of
from nsnet.errors import InvalidArgument, NsnetError, Unavailable
from nsnet.kernel import namespace
from nsnet.kernel.netlink import Netlink, owner_alias
from nsnet.models import OPT_MTU, Endpoint, Network, NetworkCreate

log = logging.getLogger(__name__)

BRIDGE = "br0"
VXLAN = "vxlan0"
VXLAN_OVERHEAD = 50  # outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14)
FALLBACK_UNDERLAY_MTU = 1500
KNOWN_OPTIONS = {OPT_MTU, OPT_VXLANID_LIST}
MISSING_STORE = (
    "overlay networks need a cluster store: start nsnetd with --cluster-store etcd://ADDR:PORT "
    "--advertise-addr IP (or cluster-store and cluster-advertise in daemon.json)"
)


@dataclass
class DataPlane:
    """One overlay network's namespace on this host, and what is programmed in it."""

    network_id: str
    netns_path: Path
    netlink: Netlink
    bridge_index: int
    vxlan_index: int
    mtu: int
    members: set[str] = field(default_factory=set)  # local endpoint ids
    programmed: dict[str, tuple[str, IPv4Address, IPv4Address]] = field(default_factory=dict)


class OverlayDriver:
    name = "overlay"

    def __init__(
        self, host: Netlink, sandboxes, directory: Path, cluster: ClusterConfig | None
    ) -> None:
        """``sandboxes(netns_path)`` gives a Netlink handle inside a container's sandbox."""
        self.host = host
        self.sandboxes = sandboxes
        self.directory = directory
        self.cluster = cluster
        self.lock = threading.RLock()
        self._planes: dict[str, DataPlane] = {}
        self._remote: dict[str, dict[str, EndpointRecord]] = {}  # network id -> endpoints

    def prepare(self) -> bool:
        """Make the directory of overlay namespaces a shared mount (as the sandboxes' is).

        True when the mount point was made now.
        """
        return namespace.ensure_shared_directory(self.directory)

    def close(self) -> None:
        """Close the data planes' netlink handles; their namespaces stay, for the next start."""
        with self.lock:
            for plane in self._planes.values():
                plane.netlink.close()
            self._planes.clear()

    # The network

    def validate(self, request: NetworkCreate) -> None:
        """Refuse an overlay network when there is no cluster store (Unavailable).

        InvalidArgument for unknown options, an MTU outside 68-65535, a VNI that is not one number
        from 1 to 2^24 - 1, and more than one subnet.
        """
        if self.cluster is None:
            raise Unavailable(f"cannot create network '{request.name}': {MISSING_STORE}")
        unknown = set(request.options) - KNOWN_OPTIONS
        if unknown:
            raise InvalidArgument(
                f"cannot create network '{request.name}': unknown overlay option(s) "
                + ", ".join(sorted(unknown))
            )
        mtu = request.options.get(OPT_MTU)
        if mtu is not None and (not mtu.isdigit() or not 68 <= int(mtu) <= 65535):
            raise InvalidArgument(
                f"cannot create network '{request.name}': mtu '{mtu}' must be a number "
                "from 68 to 65535"
            )
        if OPT_VXLANID_LIST in request.options:
            parse_vni(request.options[OPT_VXLANID_LIST], request.name)
        if len(request.ipam) > 1:
            raise InvalidArgument(
                f"cannot create network '{request.name}': only one IPv4 subnet per network is "
                "supported"
            )

    def create(self, network: Network) -> None:
        """Nothing to make yet: a host gets the data plane with its first member."""

    def delete(self, network: Network) -> None:
        """Remove the network's data plane on this host, if any; forget its remote endpoints."""
        with self.lock:
            self._remove_plane(network.id)
            self._remote.pop(network.id, None)

    def mtu(self, network: Network) -> int:
        """The option when given, else this host's underlay MTU minus VXLAN's 50 bytes."""
        # TODO: each host derives the MTU from its own underlay; hosts whose underlays differ
        # get different MTUs on one network, and the larger side relies on path MTU discovery.
        # Give -o com.docker.network.driver.mtu on such clusters.
        if network.options.get(OPT_MTU):
            return int(network.options[OPT_MTU])
        underlay = FALLBACK_UNDERLAY_MTU
        if self.cluster is not None:
            index = self.host.address_link(self.cluster.advertise_address)
            if index is None:
                log.warning(
                    "network %s: no link holds the advertise address %s; assuming an underlay "
                    "MTU of %d",
                    network.name,
                    self.cluster.advertise_address,
                    FALLBACK_UNDERLAY_MTU,
                )
            else:
                underlay = self.host.link(index)["mtu"] or FALLBACK_UNDERLAY_MTU
        return underlay - VXLAN_OVERHEAD

    def netns_path(self, network_id: str) -> Path:
        """The file that keeps the network's data plane namespace on this host alive."""
        return self.directory / network_id

    # Endpoints

    def join(
        self, network: Network, endpoint: Endpoint, netns_path: str, default_route: bool
    ) -> None:
        """Plug an endpoint in: a veth pair from the data plane's ``br0`` into the sandbox.

        The host's first member makes the data plane (namespace, bridge, VXLAN device, the remote
        endpoints' entries), which is removed again if the join fails. The container end gets the
        endpoint's address and is set up; a default route is added only with ``default_route``
        and a gateway, which an overlay endpoint lacks (the gateway bridge routes it).
        """
        with self.lock, contextlib.ExitStack() as undo:
            plane = self._planes.get(network.id)
            if plane is None:
                plane = self._make_plane(network)
                undo.callback(self._remove_plane, network.id)

            failpoints.hit("connect.veth")
            # A rejoin at reconcile (the container's sandbox was lost and made again) may find
            # the old pair still dying in the plane under the same name.
            plane.netlink.delete_link(endpoint.host_ifname)
            plane.netlink.add_veth(
                endpoint.host_ifname,
                endpoint.container_ifname,
                netns_path,
                plane.bridge_index,
                endpoint.mac_address,
                plane.mtu,
                endpoint.id,
            )
            undo.callback(plane.netlink.delete_link, endpoint.host_ifname)

            failpoints.hit("connect.address")
            sandbox = self.sandboxes(netns_path)
            container_index = sandbox.link_index(endpoint.container_ifname)
            sandbox.add_address(
                container_index, endpoint.address, endpoint.prefixlen, endpoint.container_ifname
            )
            sandbox.set_up(container_index)
            if default_route and endpoint.gateway is not None:
                sandbox.add_default_route(endpoint.gateway, container_index)
            plane.members.add(endpoint.id)
            undo.pop_all()
        log.debug(
            "network %s: endpoint %s (%s) joined with %s",
            network.name,
            endpoint.host_ifname,
            endpoint.container_ifname,
            endpoint.address,
        )

    def leave(self, network: Network, endpoint: Endpoint, netns_path: str | None) -> None:
        """Delete the endpoint's veth pair; the last member's leaving removes the data plane."""
        with self.lock:
            plane = self._planes.get(network.id)
            if plane is None:
                return
            plane.netlink.delete_link(endpoint.host_ifname)
            plane.members.discard(endpoint.id)
            if not plane.members:
                self._remove_plane(network.id)
        log.debug("network %s: endpoint %s left", network.name, endpoint.host_ifname)

    def endpoint_present(self, network: Network, endpoint: Endpoint) -> bool:
        """Whether the endpoint's veth is in the network's data plane (for reconcile)."""
        with self.lock:
            plane = self._planes.get(network.id)
            return plane is not None and plane.netlink.link_index(endpoint.host_ifname) is not None

    def reconcile(self, networks: dict[str, Network], members: dict[str, set[str]]) -> None:
        """Adopt the data planes of networks that still have members here; remove the rest.

        ``members`` maps a network id to the ids of its endpoints on this host. Missing
        endpoints are joined again by the engine afterwards.
        """
        with self.lock:
            for path in sorted(self.directory.iterdir()) if self.directory.exists() else []:
                network = networks.get(path.name)
                if network is None or not members.get(path.name):
                    log.warning(
                        "reconcile: removing leftover overlay namespace %s", path.name[:12]
                    )
                    if path.name in self._planes:
                        self._remove_plane(path.name)
                    else:
                        self._destroy_namespace(path)
                    continue
                if path.name in self._planes:  # already ours (a reconcile while running)
                    self._planes[path.name].members = set(members[path.name])
                    continue
                try:
                    self._adopt_plane(network, path, members[path.name])
                except NsnetError as error:
                    log.warning(
                        "network %s: cannot adopt its data plane (%s); making it again",
                        network.name,
                        error,
                    )
                    self._destroy_namespace(path)

    # The data plane

    def _make_plane(self, network: Network) -> DataPlane:
        if self.cluster is None:
            raise Unavailable(f"cannot connect to network '{network.name}': {MISSING_STORE}")
        path = self.netns_path(network.id)
        mtu = self.mtu(network)
        vni = vni_of(network)
        with contextlib.ExitStack() as undo:
            failpoints.hit("overlay.namespace")
            namespace.create(path, None, None)
            undo.callback(self._destroy_namespace, path)
            netlink = Netlink.open(path)
            undo.callback(netlink.close)
            netlink.set_up("lo")

            bridge_index = netlink.add_bridge(BRIDGE, mtu, network.id)
            netlink.set_up(bridge_index)

            failpoints.hit("overlay.vxlan")
            self.host.add_vxlan(
                VXLAN, vni, self.cluster.advertise_address, mtu, str(path), network.id
            )
            vxlan_index = netlink.link_index(VXLAN)
            netlink.set_alias(vxlan_index, owner_alias(network.id), VXLAN)
            netlink.set_master(vxlan_index, bridge_index)

            plane = DataPlane(network.id, path, netlink, bridge_index, vxlan_index, mtu)
            self._planes[network.id] = plane
            undo.callback(self._planes.pop, network.id, None)
            for record in self._remote.get(network.id, {}).values():
                self._program(plane, record)
            undo.pop_all()
        log.info(
            "network %s: data plane ready (VNI %d, MTU %d, %d remote endpoints)",
            network.name,
            vni,
            mtu,
            len(plane.programmed),
        )
        return plane

    def _adopt_plane(self, network: Network, path: Path, members: set[str]) -> None:
        netlink = Netlink.open(path)
        try:
            bridge_index = netlink.link_index(BRIDGE)
            vxlan_index = netlink.link_index(VXLAN)
            if bridge_index is None or vxlan_index is None:
                raise Unavailable(f"cannot adopt network '{network.name}': br0 or vxlan0 is gone")
            mtu = netlink.link(bridge_index)["mtu"]
            plane = DataPlane(
                network.id, path, netlink, bridge_index, vxlan_index, mtu, set(members)
            )

            # What the kernel holds may be stale (endpoints gone while the daemon was down).
            wanted = self._remote.get(network.id, {})
            wanted_macs = {record.mac_address for record in wanted.values()}
            wanted_addresses = {str(record.address) for record in wanted.values()}
            for mac_address, destination in netlink.fdb_entries(vxlan_index):
                if mac_address not in wanted_macs and destination:
                    netlink.delete_fdb(vxlan_index, mac_address, IPv4Address(destination))
            for address, _, _ in netlink.neighbours(vxlan_index):
                if address not in wanted_addresses:
                    netlink.delete_neighbour(vxlan_index, IPv4Address(address))
            for record in wanted.values():
                self._program(plane, record)
        except BaseException:
            # Not registered, and the socket closed: the caller destroys the namespace, which an
            # open socket would keep alive, and the next join makes the plane anew.
            netlink.close()
            raise
        self._planes[network.id] = plane
        log.info("network %s: data plane adopted (%d members)", network.name, len(members))

    def _remove_plane(self, network_id: str) -> None:
        plane = self._planes.pop(network_id, None)
        if plane is None:
            return
        # The VXLAN device goes first and synchronously: a namespace is torn down in the
        # background, and a new data plane with the same VNI would clash with it meanwhile.
        with contextlib.suppress(NsnetError):
            plane.netlink.delete_link(VXLAN)
        plane.netlink.close()
        self._destroy_namespace(plane.netns_path)
        log.info("network %s: data plane removed (no members left)", network_id[:12])

    def _destroy_namespace(self, path: Path) -> None:
        if namespace.is_mounted_namespace(path):
            with contextlib.suppress(NsnetError, OSError):
                netlink = Netlink.open(path)
                try:
                    netlink.delete_link(VXLAN)
                finally:
                    netlink.close()
        namespace.remove(path)

    # Remote endpoints (called by the cluster agent's thread)

    def remote_put(self, record: EndpointRecord) -> None:
        """Record another host's endpoint, and program its FDB and neighbour entries.

        The entries go into the network's data plane when this host has one (else when it is
        made). Called by the cluster agent's thread; idempotent.
        """
        with self.lock:
            self._remote.setdefault(record.network_id, {})[record.endpoint_id] = record
            plane = self._planes.get(record.network_id)
            if plane is not None:
                self._program(plane, record)

    def remote_delete(self, network_id: str, endpoint_id: str) -> EndpointRecord | None:
        """Forget another host's endpoint, removing its entries; its record, or None if unknown."""
        with self.lock:
            record = self._remote.get(network_id, {}).pop(endpoint_id, None)
            plane = self._planes.get(network_id)
            if plane is not None:
                self._unprogram(plane, endpoint_id)
            return record

    def remote_endpoints(self, network_id: str | None = None) -> list[EndpointRecord]:
        """Other hosts' endpoints as last seen: one network's, or every network's."""
        with self.lock:
            if network_id is not None:
                return list(self._remote.get(network_id, {}).values())
            return [record for each in self._remote.values() for record in each.values()]

    def _program(self, plane: DataPlane, record: EndpointRecord) -> None:
        wanted = (record.mac_address, record.address, record.host_address)
        current = plane.programmed.get(record.endpoint_id)
        if current == wanted:
            return
        if current is not None:
            self._unprogram(plane, record.endpoint_id)
        try:
            plane.netlink.replace_fdb(plane.vxlan_index, record.mac_address, record.host_address)
            plane.netlink.replace_neighbour(plane.vxlan_index, record.address, record.mac_address)
        except NsnetError as error:
            log.warning(
                "network %s: cannot program endpoint %s of host %s: %s",
                record.network_name,
                record.container_name,
                record.host_address,
                error,
            )
            return
        plane.programmed[record.endpoint_id] = wanted
        log.debug(
            "network %s: %s (%s) is at host %s",
            record.network_name,
            record.address,
            record.mac_address,
            record.host_address,
        )

    def _unprogram(self, plane: DataPlane, endpoint_id: str) -> None:
        current = plane.programmed.pop(endpoint_id, None)
        if current is None:
            return
        mac_address, address, host_address = current
        try:
            plane.netlink.delete_fdb(plane.vxlan_index, mac_address, host_address)
            plane.netlink.delete_neighbour(plane.vxlan_index, address)
        except NsnetError as error:
            log.warning("cannot remove the entries of %s (%s): %s", address, mac_address, error)
