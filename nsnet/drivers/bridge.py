"""The ``bridge`` driver: a Linux bridge per network, a veth pair per endpoint.

The bridge carries the gateway address, so it is every container's default route. An
endpoint's host end (``veth<7 hex>``) is enslaved to the bridge with hairpin mode on (so a
container can reach its own published ports through the host); its container end is created
directly inside the sandbox under its final name (``eth0``, ``eth1``, ...), which takes one
netlink message instead of create, move and rename.
"""

import contextlib
import errno
import logging

from nsnet import failpoints
from nsnet.errors import Conflict, InvalidArgument, NsnetError, Unavailable
from nsnet.ipam import mac_from_address, parse_address
from nsnet.kernel.netlink import ALIAS_PREFIX, Netlink, owner_alias, write_sysctl
from nsnet.kernel.reaper import LinkReaper
from nsnet.models import (
    OPT_BRIDGE_NAME,
    OPT_DEFAULT_BRIDGE,
    OPT_ENABLE_ICC,
    OPT_ENABLE_IP_MASQUERADE,
    OPT_HOST_BINDING_IPV4,
    OPT_MTU,
    Endpoint,
    Network,
    NetworkCreate,
    parse_bool,
)

log = logging.getLogger(__name__)

IFNAMSIZ = 15
BRIDGE_PORT_LIMIT = 1023  # the kernel's BR_MAX_PORTS (1,024) less port number 0, which it reserves
KNOWN_OPTIONS = {
    OPT_BRIDGE_NAME,
    OPT_MTU,
    OPT_ENABLE_ICC,
    OPT_ENABLE_IP_MASQUERADE,
    OPT_HOST_BINDING_IPV4,
    OPT_DEFAULT_BRIDGE,
}


def bridge_mac_address(network: Network) -> str | None:
    """The bridge's own MAC, derived from its gateway as containers' MACs are from theirs.

    No endpoint ever holds the gateway address, so no container has this MAC.
    """
    gateway = next((config.gateway for config in network.ipam if config.gateway), None)
    return mac_from_address(gateway) if gateway else None


def bridge_full(error: NsnetError) -> bool:
    """Whether a link change failed because the bridge has all the ports it can (EXFULL)."""
    cause = error.__cause__
    return isinstance(cause, OSError) and cause.errno == errno.EXFULL


def valid_ifname(name: str) -> bool:
    """Whether the kernel takes ``name`` for an interface (its dev_valid_name, and no NUL)."""
    if name in (".", ".."):
        return False
    return not any(char in "/:" or char.isspace() or not char.isprintable() for char in name)


class BridgeDriver:
    name = "bridge"

    def __init__(self, host: Netlink, sandboxes, reaper: LinkReaper) -> None:
        """``sandboxes(netns_path)`` returns a Netlink handle inside that sandbox."""
        self.host = host
        self.sandboxes = sandboxes
        self.reaper = reaper
        # Bridge indexes never change while the bridge lives; looking one up costs a request.
        self._bridge_indexes: dict[str, int] = {}

    def validate(self, request: NetworkCreate) -> None:
        """Refuse what Docker refuses of a bridge network's options (InvalidArgument).

        Unknown options; a bridge name the kernel would not take; icc and masquerade values that
        are no booleans; a host binding address that is no IPv4 address; an MTU outside 68-65535.
        """
        unknown = set(request.options) - KNOWN_OPTIONS
        if unknown:
            raise InvalidArgument(
                f"cannot create network '{request.name}': unknown bridge option(s) "
                + ", ".join(sorted(unknown))
            )
        bridge_name = request.options.get(OPT_BRIDGE_NAME)
        if bridge_name is not None and not 0 < len(bridge_name.encode()) <= IFNAMSIZ:
            raise InvalidArgument(
                f"cannot create network '{request.name}': bridge name '{bridge_name}' must be "
                f"1 to {IFNAMSIZ} bytes"
            )
        if bridge_name is not None and not valid_ifname(bridge_name):
            raise InvalidArgument(
                f"cannot create network '{request.name}': bridge name {bridge_name!r} is not "
                "a valid interface name (no '/', ':', spaces or control characters; not '.' "
                "or '..')"
            )
        for key in (OPT_ENABLE_ICC, OPT_ENABLE_IP_MASQUERADE):
            value = request.options.get(key)
            if value is not None and parse_bool(value) is None:
                raise InvalidArgument(
                    f"cannot create network '{request.name}': {key} '{value}' is not a boolean "
                    "(true or false)"
                )
        binding_ip = request.options.get(OPT_HOST_BINDING_IPV4)
        if binding_ip is not None:
            try:
                parse_address(binding_ip, OPT_HOST_BINDING_IPV4)
            except InvalidArgument as error:
                raise InvalidArgument(
                    f"cannot create network '{request.name}': {error}"
                ) from error
        mtu = request.options.get(OPT_MTU)
        if mtu is not None and (not mtu.isdigit() or not 68 <= int(mtu) <= 65535):
            raise InvalidArgument(
                f"cannot create network '{request.name}': mtu '{mtu}' must be a number "
                "from 68 to 65535"
            )

    def create(self, network: Network) -> None:
        """Make the network's bridge: its own MAC, the gateway address, route_localnet, up.

        Idempotent, and run for every bridge network at each start: an existing bridge is adopted
        when it carries this network's alias; any other link of that name is a Conflict.
        A bridge made here is deleted again when a later step fails.
        """
        bridge = network.bridge_name
        with contextlib.ExitStack() as undo:
            existing = self.host.link_index(bridge)
            if existing is not None:
                link = self.host.link(existing)
                if link["alias"] != owner_alias(network.id):
                    raise Conflict(
                        f"cannot create network '{network.name}': a link named '{bridge}' "
                        "already exists and is not nsnet's"
                    )
                index = existing
                mac_address = bridge_mac_address(network)
                if mac_address and link["mac_address"] != mac_address:
                    self.host.set_mac_address(index, mac_address)  # one made before it was fixed
            else:
                failpoints.hit("create_network.bridge")
                index = self.host.add_bridge(
                    bridge, network.mtu, network.id, bridge_mac_address(network)
                )
                undo.callback(self.host.delete_link, bridge)

            # Steps of a new bridge only: reconcile ensures existing ones at every start.
            if existing is None:
                failpoints.hit("create_network.address")
            present = {address for address, _ in self.host.addresses(index)}
            for config in network.ipam:
                if config.gateway is not None and str(config.gateway) not in present:
                    self.host.add_address(index, config.gateway, config.subnet.prefixlen, bridge)

            # Localhost access to published ports is routed to the bridge (issue 3); only
            # nsnet's bridges get route_localnet, never 'all' or the uplink (CVE-2020-8558).
            write_sysctl(f"net.ipv4.conf.{bridge}.route_localnet", "1")
            if existing is None:
                failpoints.hit("create_network.up")
            self.host.set_up(index)
            self._bridge_indexes[network.id] = index
            undo.pop_all()
        log.info("network %s: bridge %s ready", network.name, bridge)

    def delete(self, network: Network) -> None:
        """Delete the network's bridge, if it is there and carries nsnet's alias."""
        bridge = network.bridge_name
        index = self.host.link_index(bridge)
        if index is None:
            return
        if not self.host.link(index)["alias"].startswith(ALIAS_PREFIX):
            log.warning("network %s: bridge %s is not nsnet's; left alone", network.name, bridge)
            return
        self.host.delete_link(bridge)
        self._bridge_indexes.pop(network.id, None)
        log.info("network %s: bridge %s removed", network.name, bridge)

    def join(
        self, network: Network, endpoint: Endpoint, netns_path: str, default_route: bool
    ) -> None:
        """Plug an endpoint in: a veth pair from the bridge into the sandbox at ``netns_path``.

        The container end gets the endpoint's address and is set up; with ``default_route`` (and
        a gateway) the sandbox routes through the gateway. NsnetError when the bridge is missing,
        Unavailable when it has as many ports as the kernel allows (after waiting for ports still
        being deleted). The veth pair is deleted again when a later step fails.
        """
        bridge_index = self._bridge_indexes.get(network.id)
        if bridge_index is None:
            bridge_index = self.host.link_index(network.bridge_name)
            if bridge_index is None:
                raise NsnetError(
                    f"cannot connect to network '{network.name}': bridge "
                    f"'{network.bridge_name}' is missing"
                )
            self._bridge_indexes[network.id] = bridge_index

        with contextlib.ExitStack() as undo:
            failpoints.hit("connect.veth")
            self._add_port(network, endpoint, netns_path, bridge_index)
            undo.callback(self.host.delete_link, endpoint.host_ifname)

            failpoints.hit("connect.address")
            sandbox = self.sandboxes(netns_path)
            container_index = sandbox.link_index(endpoint.container_ifname)
            sandbox.add_address(
                container_index, endpoint.address, endpoint.prefixlen, endpoint.container_ifname
            )
            sandbox.set_up(container_index)

            failpoints.hit("connect.route")
            if default_route and endpoint.gateway is not None:
                sandbox.add_default_route(endpoint.gateway, container_index)
            undo.pop_all()
        log.debug(
            "network %s: endpoint %s (%s) joined with %s",
            network.name,
            endpoint.host_ifname,
            endpoint.container_ifname,
            endpoint.address,
        )

    def _add_port(
        self, network: Network, endpoint: Endpoint, netns_path: str, bridge_index: int
    ) -> None:
        """The endpoint's veth pair, its host end a port of the network's bridge."""

        def add() -> None:
            self.host.add_veth(
                endpoint.host_ifname,
                endpoint.container_ifname,
                netns_path,
                bridge_index,
                endpoint.mac_address,
                network.mtu,
                endpoint.id,
            )

        try:
            add()
            return
        except NsnetError as error:
            if not bridge_full(error):
                raise
            if not self.reaper.pending:
                raise Unavailable(
                    f"cannot connect to network '{network.name}': bridge "
                    f"'{network.bridge_name}' has {BRIDGE_PORT_LIMIT} ports, the kernel's limit"
                ) from error
        # Ports of endpoints that left are still waiting for the reaper: wait, then retry.
        log.info("network %s: bridge full of ports being deleted; waiting for them", network.name)
        self.reaper.drain()
        add()

    def reattach(self, network: Network, endpoint: Endpoint) -> None:
        """Plug an endpoint's existing host end back into its bridge if it is not a port.

        A bridge re-created at reconcile (deleted while nsnet was down) has lost its ports.
        """
        index = self.host.link_index(endpoint.host_ifname)
        bridge_index = self.host.link_index(network.bridge_name)
        if index is None or bridge_index is None:
            return
        if self.host.link(index)["master"] == bridge_index:
            return
        self.host.attach_to_bridge(index, bridge_index)
        log.warning(
            "network %s: veth %s plugged back into bridge %s",
            network.name,
            endpoint.host_ifname,
            network.bridge_name,
        )

    def leave(self, network: Network, endpoint: Endpoint, netns_path: str | None) -> None:
        """Unplug an endpoint at once; the kernel's slow veth deletion happens in the background.

        Inside the sandbox the interface is set down (which drops its routes) and renamed out
        of the way so that its name can be reused at once. ``netns_path`` None means the
        sandbox is about to go, which takes its end of the pair with it.
        """
        if netns_path:
            sandbox = self.sandboxes(netns_path)
            found = sandbox.link_and_peer(endpoint.container_ifname)
            # Only the peer of nsnet's host end: an interface of that name that someone else
            # made there (a CNI runtime's namespace is not nsnet's) is left alone.
            if found is not None and found[1] == self.host.link_index(endpoint.host_ifname):
                index = found[0]
                sandbox.set_down(index)
                sandbox.rename(index, "gone" + endpoint.host_ifname.removeprefix("veth"))
        self.reaper.delete(endpoint.host_ifname)
        log.debug("network %s: endpoint %s left", network.name, endpoint.host_ifname)
