"""The engine's records and requests: networks, containers, endpoints, port bindings.

These are plain dataclasses, free of HTTP and of the kernel. The API layer turns them into
Docker's JSON; the store turns them into rows.
"""

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

# Docker's option keys, which nsnet honours under the same names.
OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_ENABLE_ICC = "com.docker.network.bridge.enable_icc"
OPT_ENABLE_IP_MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
OPT_HOST_BINDING_IPV4 = "com.docker.network.bridge.host_binding_ipv4"
OPT_DEFAULT_BRIDGE = "com.docker.network.bridge.default_bridge"
OPT_MTU = "com.docker.network.driver.mtu"

# The words Go's strconv.ParseBool takes, which Docker uses for its boolean options.
TRUE_WORDS = ("1", "t", "T", "true", "TRUE", "True")
FALSE_WORDS = ("0", "f", "F", "false", "FALSE", "False")


def parse_bool(text: str) -> bool | None:
    """A boolean option's value as Docker reads it; None when it is no boolean at all."""
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    return None


BUILTIN_NETWORKS = ("bridge", "host", "none")
DEFAULT_BRIDGE_DEVICE = "nsnet0"
# The local bridge network (and device) through which containers on overlay networks reach the
# outside and publish ports, as Docker's docker_gwbridge; made on demand.
GATEWAY_BRIDGE_NETWORK = "nsnet_gwbridge"


@dataclass
class IpamConfig:
    """One subnet of a network and the addresses it reserves."""

    subnet: IPv4Network
    gateway: IPv4Address | None = None
    ip_range: IPv4Network | None = None
    aux_addresses: dict[str, IPv4Address] = field(default_factory=dict)
    gateway_chosen: bool = False  # nsnet chose the gateway of a subnet the user gave


@dataclass
class Network:
    id: str  # 64 hex
    name: str
    driver: str  # bridge | host | null | overlay
    created: str  # RFC 3339 with nanoseconds, as Docker prints it
    scope: str = "local"  # global: an overlay network, defined in the cluster store
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    enable_ipv6: bool = False
    ipam_driver: str = "default"
    ipam_options: dict[str, str] = field(default_factory=dict)
    ipam: list[IpamConfig] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def builtin(self) -> bool:
        """Whether this is a pre-defined network (bridge, host, none), never created or removed."""
        return self.name in BUILTIN_NETWORKS

    @property
    def bridge_name(self) -> str | None:
        """The bridge device of a bridge network."""
        if self.driver != "bridge":
            return None
        return self.options.get(OPT_BRIDGE_NAME) or f"br-{self.id[:12]}"

    @property
    def mtu(self) -> int:
        """The ``com.docker.network.driver.mtu`` option, else 1500: the MTU of a bridge's links.

        The overlay driver derives its own (``OverlayDriver.mtu``).
        """
        return int(self.options.get(OPT_MTU, "1500") or 1500)

    def option_enabled(self, key: str) -> bool:
        """A boolean option; Docker treats a missing icc/masquerade option as true."""
        return parse_bool(self.options.get(key, "true")) is not False


@dataclass
class NetworkCreate:
    """A request to create a network, as `network create` or POST /networks/create give it."""

    name: str
    driver: str = "bridge"
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    ipam: list[IpamConfig] = field(default_factory=list)
    ipam_options: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class PortBinding:
    """hostIP:hostPort/proto forwarded to containerPort of the container's address."""

    container_port: int
    protocol: str = "tcp"  # tcp | udp | sctp
    # In a request "" is the network's host_binding_ipv4 (0.0.0.0 unless set): the engine
    # records the address it chose.
    host_ip: str = "0.0.0.0"
    host_port: int = 0  # 0: any free port (chosen at create)
    host_port_last: int = 0  # above host_port: any free port of host_port..host_port_last


@dataclass
class Endpoint:
    id: str  # 64 hex
    network_id: str
    container_id: str
    container_ifname: str  # eth0, eth1, ...
    host_ifname: str  # veth<7 hex>
    mac_address: str
    address: IPv4Address
    prefixlen: int
    gateway: IPv4Address | None
    aliases: list[str] = field(default_factory=list)
    static_address: bool = False  # pinned with --ip: never handed out while this exists
    cni_network: str = ""  # the CNI network (configuration name) a runtime's ADD made it for


@dataclass
class Container:
    id: str  # 64 hex
    name: str
    created: str
    hostname: str
    network_mode: str  # bridge | host | none | container:<id> | <network name>
    command: list[str] = field(default_factory=list)
    state: str = "created"  # created | running | exited
    pid: int = 0
    # The process's start time (clock ticks since boot, /proc/PID/stat): a recycled pid after
    # a restart is not taken for the container's process.
    process_start_time: int = 0
    exit_code: int = 0
    started_at: str = ""
    finished_at: str = ""
    detached: bool = False  # the process is the daemon's (run -d) rather than a client's
    # Asked for a TTY (Config.Tty): its logs are then the raw stream, not Docker's frames.
    # TODO: a detached process gets no pseudo-terminal; its output goes to its log file as is.
    tty: bool = False
    sysctls: dict[str, str] = field(default_factory=dict)
    mac_address: str | None = None  # requested for the first endpoint
    ip_address: str | None = None  # requested for the first endpoint
    aliases: list[str] = field(default_factory=list)  # requested for the first endpoint
    auto_remove: bool = False
    ports: list[PortBinding] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    dns: list[str] = field(default_factory=list)  # --dns
    dns_search: list[str] = field(default_factory=list)  # --dns-search
    dns_options: list[str] = field(default_factory=list)  # --dns-option
    extra_hosts: list[str] = field(default_factory=list)  # --add-host name:address
    netns_path: str = ""  # bind-mounted network namespace ("" in host mode)
    uts_path: str = ""  # bind-mounted UTS namespace ("" in host mode)
    mnt_path: str = ""  # bind-mounted mount namespace ("" in host mode), its own in any other
    # Set when a CNI runtime attached the container (CNI_CONTAINERID): the runtime owns its
    # network namespace (netns_path), its processes and its files; nsnet owns the endpoints.
    cni_id: str = ""
    cni_netns_inode: int = 0  # that namespace's inode at the ADD: a new one at the path is not it

    @property
    def shares_namespace_of(self) -> str | None:
        """The id of the container whose namespace this one joins (container:<id> mode)."""
        if self.network_mode.startswith("container:"):
            return self.network_mode.split(":", 1)[1]
        return None


@dataclass
class CniAttach:
    """A CNI ADD: attach the runtime's namespace to a network as interface ``ifname``."""

    runtime_id: str  # CNI_CONTAINERID
    netns_path: str  # CNI_NETNS, as nsnetd opens it
    ifname: str  # CNI_IFNAME
    network: str  # an nsnet network name or id
    ports: list[PortBinding] = field(default_factory=list)  # the portMappings capability
    ip_address: str | None = None  # the ips capability (ADDR/PREFIX), or CNI_ARGS IP=
    mac_address: str | None = None  # the mac capability, or CNI_ARGS MAC=
    aliases: list[str] = field(default_factory=list)  # the aliases capability
    cni_network: str = ""  # the configuration's name (DEL and GC are scoped by it)


@dataclass
class ContainerCreate:
    """A request to create a container, as `create`/`run` or POST /containers/create give it."""

    name: str | None = None
    command: list[str] = field(default_factory=list)
    network: str = "bridge"  # a network name or id, host, none, container:<name|id>
    ip_address: str | None = None
    mac_address: str | None = None
    hostname: str | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    auto_remove: bool = False
    ports: list[PortBinding] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)
    tty: bool = False
