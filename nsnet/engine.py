"""The engine: networks, containers and endpoints as transactions over the store and kernel.

Every public method is one operation: it completes, or it raises ``NsnetError`` and leaves
nothing behind. Store changes run in one SQLite transaction, committed last; kernel steps push
their undo onto an ``ExitStack`` that is popped only on success.

The engine is not thread-safe by design: the daemon calls it from one worker thread, in the
host's network namespace. Nothing in it is locked (the store's connection and transaction
depth, the cache of sandbox netlink handles, the processes it waits for), and the sockets it
opens per call (conntrack, sock_diag) act in the calling thread's namespace.
"""

import contextlib
import dataclasses
import hashlib
import logging
import os
import re
import secrets
import select
import signal
import subprocess
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from nsnet import failpoints, ipam
from nsnet.cluster.config import ClusterConfig
from nsnet.cluster.records import EndpointRecord
from nsnet.dns.files import ensure_container_files
from nsnet.dns.registry import DnsRegistry, check_container_dns
from nsnet.drivers import BridgeDriver, HostDriver, NullDriver
from nsnet.drivers.bridge import IFNAMSIZ, valid_ifname
from nsnet.drivers.overlay import MISSING_STORE, OverlayDriver
from nsnet.errors import Conflict, Forbidden, InvalidArgument, NotFound, NsnetError, Unavailable
from nsnet.firewall import ports as host_ports
from nsnet.firewall.nft import Firewall
from nsnet.firewall.ruleset import INET, TABLE, Binding, BridgeNetwork
from nsnet.ipam import mac_from_address
from nsnet.kernel import namespace
from nsnet.kernel.netlink import (
    ALIAS_PREFIX,
    LINK_GROUP,
    Netlink,
    owner_alias,
    read_sysctl,
    write_sysctl,
)
from nsnet.kernel.reaper import LinkReaper
from nsnet.models import (
    DEFAULT_BRIDGE_DEVICE,
    GATEWAY_BRIDGE_NETWORK,
    OPT_BRIDGE_NAME,
    OPT_DEFAULT_BRIDGE,
    OPT_ENABLE_ICC,
    OPT_ENABLE_IP_MASQUERADE,
    OPT_HOST_BINDING_IPV4,
    OPT_MTU,
    CniAttach,
    Container,
    ContainerCreate,
    Endpoint,
    IpamConfig,
    Network,
    NetworkCreate,
)
from nsnet.paths import Paths
from nsnet.sandbox import Sandboxes

log = logging.getLogger(__name__)

# In a container's directory: what its detached processes write, stdout and stderr as one.
OUTPUT_LOG = "output.log"

# Docker's, for containers and networks; matched whole (a "$" would let a final newline in).
NAME_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
NETWORK_NAME_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
# An alias is a name in the embedded DNS: letters, digits and . _ - (as a network's name).
ALIAS_PATTERN = NETWORK_NAME_PATTERN
ALIAS_LIMIT = 253  # the longest name DNS carries
NETWORK_NAME_LIMIT = 128
MAC_PATTERN = re.compile(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}")
CNI_NAMESPACE_CHECK = 2.0  # seconds between looks for runtime namespaces gone without a DEL
CNI_ID_LABEL = "nsnet.cni.container-id"  # on a CNI runtime's container: the runtime's id
# The CNI spec's container ids: alphanumerics, '_', '.' and '-'.
CNI_ID_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
UNKNOWN_EXIT_CODE = -1  # the process ended while nobody could wait for it
CLIENT_EXIT_GRACE = 2.0  # seconds a client has to report its process's exit code
SANDBOX_HANDLES = 128  # open netlink handles kept for recently used sandboxes
STOP_POLL_SECONDS = 0.02
# How long a started process may take to exec its command (nsnet.enter imports little).
START_STATUS_TIMEOUT = 10.0

DEFAULT_BRIDGE_OPTIONS = {
    OPT_DEFAULT_BRIDGE: "true",
    OPT_ENABLE_ICC: "true",
    OPT_ENABLE_IP_MASQUERADE: "true",
    OPT_HOST_BINDING_IPV4: "0.0.0.0",
    OPT_BRIDGE_NAME: DEFAULT_BRIDGE_DEVICE,
    OPT_MTU: "1500",
}


def now() -> str:
    """The current time as Docker prints it: RFC 3339 in UTC with nanoseconds."""
    nanoseconds = time.time_ns()
    stamp = datetime.fromtimestamp(nanoseconds // 1_000_000_000, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanoseconds % 1_000_000_000:09d}Z"


def new_id() -> str:
    """A new random id of 64 hex digits, as Docker's ids of networks, containers, endpoints."""
    return secrets.token_hex(32)


def alias_problem(aliases: list[str]) -> str | None:
    """What is wrong with the first unusable alias (a name the embedded DNS serves), if any."""
    for alias in aliases:
        if not ALIAS_PATTERN.fullmatch(alias) or len(alias) > ALIAS_LIMIT:
            return (
                f"invalid alias '{alias}': aliases must match [a-zA-Z0-9][a-zA-Z0-9_.-]* and "
                f"have at most {ALIAS_LIMIT} characters"
            )
    return None


def mac_problem(mac: str) -> str | None:
    """What is wrong with ``mac`` as an interface's address, or None."""
    if not MAC_PATTERN.fullmatch(mac):
        return f"invalid MAC address '{mac}'"
    if int(mac[:2], 16) & 1:
        return f"invalid MAC address '{mac}': it is a multicast address"
    if not int(mac.replace(":", ""), 16):
        return f"invalid MAC address '{mac}': it is all zeros"
    return None


def cni_container_id(runtime_id: str) -> str:
    """The id of the container record of a CNI runtime's container: the same for every call."""
    return hashlib.sha256(f"cni:{runtime_id}".encode()).hexdigest()


def cni_request_problem(request: CniAttach) -> str | None:
    """What is wrong with a CNI ADD's names and addresses (the spec's rules), or None."""
    if not CNI_ID_PATTERN.fullmatch(request.runtime_id):
        return (
            f"container id '{request.runtime_id}' must be letters, digits, '_', '.' and '-', "
            "starting with a letter or a digit"
        )
    if ifname_problem := ifname_rules_problem(request.ifname):
        return ifname_problem
    if request.mac_address and (bad_mac := mac_problem(request.mac_address)):
        return bad_mac
    return alias_problem(request.aliases)


def ifname_rules_problem(ifname: str) -> str | None:
    """What the kernel refuses in an interface name, or None."""
    if not 0 < len(ifname.encode()) <= IFNAMSIZ:
        return f"interface name '{ifname}' must be 1 to {IFNAMSIZ} bytes"
    if not valid_ifname(ifname):
        return (
            f"interface name {ifname!r} is not valid (no '/', ':', spaces or control "
            "characters; not '.' or '..')"
        )
    return None


def check_network_request(request: NetworkCreate) -> None:
    """Refuse a network name Docker would refuse, and IPv6, naming the network."""
    name = request.name or ""
    if not NETWORK_NAME_PATTERN.fullmatch(name):
        raise InvalidArgument(
            f"cannot create network '{name}': names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"
        )
    if len(name) > NETWORK_NAME_LIMIT:
        raise InvalidArgument(
            f"cannot create network '{name[:20]}...': the name is {len(name)} characters long, "
            f"more than {NETWORK_NAME_LIMIT}"
        )
    if request.enable_ipv6:
        raise InvalidArgument(f"cannot create network '{name}': IPv6 is not supported yet")


def read_start_failure(status_read: int, timeout: float = START_STATUS_TIMEOUT) -> str:
    """What a starting process wrote to its status pipe before it exec'd ("" when it did).

    Closes the pipe. The process writes only when its command cannot start; on success the
    exec closes the pipe, so an empty read comes at once.
    """
    chunks = []
    try:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([status_read], [], [], left)
            if not ready:
                break
            chunk = os.read(status_read, 4096)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            log.warning("a starting process said nothing within %.0f s; taken as started", timeout)
    finally:
        os.close(status_read)
    text = b"".join(chunks).decode(errors="replace")
    return text.partition(" ")[2] if text else ""


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks, or None when no such process lives."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[19])


class ExitWatch:
    """Processes the engine cannot wait for (adopted after a restart, or a client's own),
    watched for their end through pidfds: a pidfd names one process, whatever becomes of its
    pid, and turns readable when it ends, so one poll covers them all. A process whose pidfd
    cannot be had is left to the caller's check of /proc.
    """

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}  # container id -> pidfd
        self._owners: dict[int, str] = {}  # pidfd -> container id
        self._poll = select.poll()

    def add(self, container_id: str, pid: int, start_time: int) -> None:
        """Watch ``pid``, the container's process if it still started at ``start_time``."""
        self.discard(container_id)
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            return  # gone already, or no pidfds here: /proc tells
        if process_start_time(pid) != start_time:  # the pid was someone else's by then
            os.close(fd)
            return
        self._fds[container_id] = fd
        self._owners[fd] = container_id
        self._poll.register(fd, select.POLLIN)

    def watches(self, container_id: str) -> bool:
        """Whether a pidfd watches the container's process."""
        return container_id in self._fds

    def ended(self) -> set[str]:
        """The containers whose watched process has ended (one poll, no waiting)."""
        if not self._fds:
            return set()
        return {self._owners[fd] for fd, _ in self._poll.poll(0) if fd in self._owners}

    def discard(self, container_id: str) -> None:
        """Stop watching the container's process."""
        fd = self._fds.pop(container_id, None)
        if fd is not None:
            self._poll.unregister(fd)
            del self._owners[fd]
            os.close(fd)

    def close(self) -> None:
        """Stop watching everything."""
        for container_id in list(self._fds):
            self.discard(container_id)


class Engine:
    def __init__(
        self,
        paths: Paths | None = None,
        dns_servers: list[str] | None = None,
        cluster: ClusterConfig | None = None,
    ) -> None:
        """``dns_servers``: upstream name servers for containers (default: the host's).

        ``cluster``: the cluster store and this host's address, for overlay networks.
        """
        self.paths = paths or Paths.from_env()
        self.cluster_config = cluster
        self.cluster = None  # the ClusterStore while open with a cluster store
        self.cluster_agent = None  # its ClusterAgent (the watch thread)
        self._pending_releases: list[tuple[str, str, IPv4Address]] = []  # failed etcd releases
        self.dns_servers = list(dns_servers or [])
        self.dns: DnsRegistry | None = None
        self.store = None
        self.host: Netlink | None = None
        self.reaper: LinkReaper | None = None
        self.firewall: Firewall | None = None
        self.warnings: list[str] = []  # shown by `nsnet info`
        self._foreign_drop: str | None = None  # the last foreign forward-drop warning logged
        self.sandboxes = Sandboxes(self.paths)
        # netns path -> (the namespace's inode when opened, a netlink handle inside it)
        self._handles: OrderedDict[str, tuple[int, Netlink]] = OrderedDict()
        self._cni_present = False  # whether any CNI runtime's container may be recorded
        self._next_cni_check = 0.0
        self._children: dict[int, str] = {}  # pid -> container id, for processes we started
        # Their Popen objects, kept until we have waited for them: a Popen that is garbage
        # collected waits for its child itself, and the exit status would be lost to reap().
        self._popens: dict[int, subprocess.Popen] = {}
        self._watched: dict[str, tuple[int, int]] = {}  # container id -> (pid, start time)
        self._exits = ExitWatch()  # those of the watched that are not our children
        self._client_runs: set[str] = set()  # containers whose process a client started
        self._client_gone: dict[str, float] = {}  # of those, when their process was seen gone
        self.drivers: dict = {}

    # Life cycle

    def open(self) -> None:
        """Open the store, make the built-in networks, and reconcile the kernel with the store."""
        self._made_directories: list[Path] = []
        try:
            self._open()
        except BaseException:
            self.close()
            # A start that failed (another daemon's bridge in the way, say) leaves no mount.
            for directory in self._made_directories:
                try:
                    namespace.release_directory(directory)
                except OSError as error:
                    log.warning("cannot unmount %s: %s", directory, error)
            raise

    def _open(self) -> None:
        from nsnet.store import Store

        self.paths.ensure()
        self.warnings = []
        self.store = Store(self.paths.database)
        self.host = Netlink.open()
        self.reaper = LinkReaper(Netlink.open())
        self._made_directories += self.sandboxes.prepare()
        self.drivers = {
            "bridge": BridgeDriver(self.host, self._sandbox_netlink, self.reaper),
            "host": HostDriver(),
            "null": NullDriver(),
            "overlay": OverlayDriver(
                self.host,
                self._sandbox_netlink,
                self.paths.overlay_dir,
                self.cluster_config,
            ),
        }
        if self.drivers["overlay"].prepare():
            self._made_directories.append(self.drivers["overlay"].directory)
        self.firewall = Firewall()
        write_sysctl("net.ipv4.ip_forward", "1")
        log.info("enabled IPv4 forwarding in the host namespace")
        self._ensure_builtin_networks()
        self.dns = DnsRegistry(self.dns_servers)
        if self.dns.warning:
            log.warning("%s", self.dns.warning)
            self.warnings.append(self.dns.warning)
        self.dns.start()
        self._open_cluster()
        self.reconcile()
        self._check_foreign_firewall()

    def _check_foreign_firewall(self) -> str | None:
        """A warning when a foreign forward chain drops by policy, logged when it first shows.

        Checked at start and again by `nsnet info`: Docker (or anyone) may set its FORWARD
        policy of DROP while nsnetd runs.
        """
        warning = self.firewall.foreign_forward_drop()
        if warning and warning != self._foreign_drop:
            log.warning("%s", warning)
        self._foreign_drop = warning
        return warning

    def close(self) -> None:
        """Stop the threads and close the handles that ``open`` made.

        The link deletions already handed over are finished first. The kernel's state
        (bridges, sandboxes, running processes) stays for the next ``open`` to reconcile. Safe to
        call twice, and after a failed ``open``.
        """
        self._close_cluster()
        self._exits.close()
        if self.dns is not None:
            self.dns.stop()
            self.dns = None
        if self.reaper is not None:
            self.reaper.close()  # finishes the deletions already handed over
            self.reaper = None
        for _, handle in self._handles.values():
            handle.close()
        self._handles.clear()
        if self.host is not None:
            self.host.close()
            self.host = None
        if self.firewall is not None:
            self.firewall.close()
            self.firewall = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def _sandbox_netlink(self, netns_path: str) -> Netlink:
        """A cached netlink handle inside a sandbox (opening one costs milliseconds).

        A handle whose namespace is no longer the one at the path (a runtime made a new one
        there) is not reused.
        """
        try:
            current = namespace.inode(netns_path)
        except OSError:
            current = 0  # gone: opening says so, in the netlink layer's words
        inode, handle = self._handles.pop(netns_path, (0, None))
        if handle is not None and inode != current:
            handle.close()
            handle = None
        if handle is None:
            handle = Netlink.open(netns_path)
        self._handles[netns_path] = (current, handle)
        while len(self._handles) > SANDBOX_HANDLES:
            _, (_, oldest) = self._handles.popitem(last=False)
            oldest.close()
        return handle

    def _forget_sandbox_netlink(self, netns_path: str) -> None:
        # An open netlink socket keeps its namespace, and the veth in it, alive.
        _, handle = self._handles.pop(netns_path, (0, None))
        if handle is not None:
            handle.close()

    def _ensure_builtin_networks(self) -> None:
        names = {network.name for network in self.store.networks()}
        if "bridge" not in names:
            subnet = ipam.choose_subnet(
                [config.subnet for network in self.store.networks() for config in network.ipam],
                self._host_routes(),
            )
            self._create_network_record(
                NetworkCreate(
                    name="bridge",
                    # The gateway is given, so inspect shows it as the article does.
                    ipam=[IpamConfig(subnet=subnet, gateway=next(subnet.hosts()))],
                    options=dict(DEFAULT_BRIDGE_OPTIONS),
                ),
                builtin=True,
            )
        for name, driver in (("host", "host"), ("none", "null")):
            if name not in names:
                network = Network(id=new_id(), name=name, driver=driver, created=now())
                with self.store.transaction():
                    self.store.put_network(network)

    def _host_routes(self) -> list[IPv4Network]:
        return [
            IPv4Network(f"{destination}/{prefixlen}", strict=False)
            for destination, prefixlen in self.host.ipv4_routes()
        ]

    # Reconciliation

    def reconcile(self) -> None:
        """Make the kernel match the store after a restart or crash.

        Removes nsnet-made links and namespace files that have no record, re-creates missing
        bridges, sandboxes (network, UTS and mount namespaces) and veth pairs of recorded ones,
        and marks containers whose process is gone as exited. Links without nsnet's alias are
        never touched.
        """
        for container in self.store.containers():
            if container.cni_id and self._cni_namespace_gone(container):
                # The ruleset is rendered whole from the store below.
                self._forget_cni_container(
                    container, "its namespace went while nsnetd was away", firewall=False
                )
        networks = {network.id: network for network in self.store.networks()}
        containers = {container.id: container for container in self.store.containers()}
        endpoints = self.store.endpoints()
        owners = set(networks) | {endpoint.id for endpoint in endpoints}

        for link in self.host.links():
            owner = link["alias"].removeprefix(ALIAS_PREFIX)
            if link["alias"].startswith(ALIAS_PREFIX) and owner not in owners:
                if link["kind"] in ("bridge", "veth"):
                    log.warning("reconcile: removing leftover link %s", link["ifname"])
                    self.host.delete_link(link["ifname"])
            elif not link["alias"] and link["group"] == LINK_GROUP and link["kind"] == "veth":
                # Made, but not yet marked, when the daemon died: its peer may sit in a
                # runtime's namespace, blocking the name a retried ADD needs.
                log.warning("reconcile: removing half-made veth pair %s", link["ifname"])
                self.host.delete_link(link["ifname"])

        for container_id, files in self.sandboxes.files().items():
            if container_id not in containers:
                log.warning("reconcile: removing leftover sandbox %s", container_id[:12])
                for path in files:
                    namespace.remove(path)
        # A crash after a create made a container's files, before its record was committed.
        for directory in sorted(self.paths.containers_dir.iterdir()):
            if directory.name not in containers:
                log.warning("reconcile: removing leftover files of %s", directory.name[:12])
                try:
                    self._remove_container_files(directory.name)
                except OSError as error:
                    log.warning("reconcile: cannot remove %s: %s", directory, error)

        for network in networks.values():
            if network.driver == "bridge":
                self.drivers["bridge"].create(network)
        self._reconcile_overlay(networks, endpoints)

        # Owners first: a container:<name> container's mount namespace needs the other's
        # network namespace, re-created here if lost.
        rebuilt: set[str] = set()
        for container in sorted(containers.values(), key=lambda c: bool(c.shares_namespace_of)):
            try:
                self._reconcile_container(container, networks, endpoints, rebuilt)
            except NsnetError as error:
                if not container.cni_id:
                    raise
                # A runtime's namespace is not nsnet's to fix: what it cannot restore there
                # must not keep the daemon from starting.
                self._forget_cni_container(
                    container, f"its attachments cannot be restored ({error})", firewall=False
                )
                continue
            if container.cni_id:
                if self.store.container(container.id) is None:
                    continue  # its last interface was gone
                self._cni_present = True
            self._update_dns(container)

        # The tables are rendered whole from the store: a restart, or a ruleset flushed while
        # the daemon was down, is repaired here.
        self.firewall.sync(
            [self._firewall_network(n) for n in networks.values() if n.driver == "bridge"],
            [binding for c in containers.values() for binding in self._live_bindings_of(c)],
        )
        self._flush_stale_conntrack(networks, endpoints)
        self._register_overlay_endpoints()

    def _flush_stale_conntrack(self, networks: dict, endpoints: list) -> None:
        """Forget flows of bridge addresses that no endpoint holds (a crash before a flush)."""
        bridges = [network for network in networks.values() if network.driver == "bridge"]
        live = {endpoint.address for endpoint in endpoints}
        live |= {config.gateway for network in bridges for config in network.ipam}
        try:
            deleted = self.firewall.flush_stale_conntrack(
                [config.subnet for network in bridges for config in network.ipam], live
            )
        except NsnetError as error:
            log.warning("reconcile: cannot flush stale conntrack entries: %s", error)
            return
        if deleted:
            log.warning("reconcile: deleted %d conntrack entries of removed containers", deleted)

    def _reconcile_container(
        self, container: Container, networks: dict, endpoints: list, rebuilt: set[str]
    ) -> None:
        """Adopt or mark exited its process, and re-create what is missing of its sandbox.

        ``rebuilt`` collects the ids of containers whose network namespace was re-created.
        """
        if container.state == "running":
            start_time = process_start_time(container.pid)
            if start_time is not None and start_time == self._recorded_start(container):
                self._watched[container.id] = (container.pid, start_time)
                self._exits.add(container.id, container.pid, start_time)
                if not container.detached:
                    self._client_runs.add(container.id)
                log.info("container %s: adopted process %d", container.name, container.pid)
            else:
                self._mark_exited(container, UNKNOWN_EXIT_CODE)

        if container.network_mode == "host":
            return
        if container.shares_namespace_of:
            self._reconcile_mount_namespace(container, container.shares_namespace_of in rebuilt)
            return
        # A CNI runtime's namespace is its own (a live one: reconcile forgot the others first).
        if not container.cni_id and not namespace.is_mounted_namespace(container.netns_path):
            log.warning("container %s: sandbox missing; re-creating it", container.name)
            self._forget_sandbox_netlink(container.netns_path)
            self.sandboxes.remove(container.id)
            # The lost namespace, and its veth pairs with it, is destroyed asynchronously: delete
            # their host ends now, or the loop below could see one still there and keep it.
            for endpoint in endpoints:
                if endpoint.container_id == container.id:
                    self._delete_own_link(endpoint.host_ifname, endpoint.id)
            self.sandboxes.create(container.id, container.hostname)
            self._prepare_sandbox(container)
            rebuilt.add(container.id)
        if not container.cni_id:
            self._reconcile_mount_namespace(container, container.id in rebuilt)
        mine = [endpoint for endpoint in endpoints if endpoint.container_id == container.id]
        for endpoint in mine:
            present = self._endpoint_present(container, networks[endpoint.network_id], endpoint)
            if not present and container.cni_id:
                # nsnet adds nothing to a runtime's namespace unasked: the attachment is gone.
                self._forget_cni_endpoint(container, networks[endpoint.network_id], endpoint)
                continue
            if not present:
                log.warning(
                    "container %s: veth %s missing; re-creating it",
                    container.name,
                    endpoint.host_ifname,
                )
                network = networks[endpoint.network_id]
                default_route = self._holds_default_route(mine, endpoint) and not (
                    container.cni_id and self._has_default_route(container)
                )
                self.drivers[network.driver].join(
                    network, endpoint, container.netns_path, default_route
                )
            elif networks[endpoint.network_id].driver == "bridge":
                # A bridge re-created above has no ports: plug the existing veth back in.
                self.drivers["bridge"].reattach(networks[endpoint.network_id], endpoint)

    def _delete_own_link(self, ifname: str, owner_id: str) -> None:
        """Delete ``ifname`` if it is there and carries ``owner_id``'s mark (never a foreign
        link that happens to have the name)."""
        index = self.host.link_index(ifname)
        with contextlib.suppress(NotFound):  # it went meanwhile (a veth's peer took it along)
            if index is not None and self.host.link(index)["alias"] == owner_alias(owner_id):
                self.host.delete_link(ifname)

    def _reconcile_mount_namespace(self, container: Container, netns_rebuilt: bool) -> None:
        """Re-create the container's mount namespace when its file is missing, or when the
        network namespace its /sys shows was re-created (that sysfs lists nothing any more)."""
        if not netns_rebuilt and namespace.is_mounted_namespace(container.mnt_path):
            return
        if netns_rebuilt:
            log.warning(
                "container %s: re-creating its mount namespace over the new network namespace",
                container.name,
            )
        else:
            log.warning("container %s: mount namespace missing; re-creating it", container.name)
        self.sandboxes.remove_mount(container.id)
        self._create_mount_namespace(container)
        with self.store.transaction():
            self.store.put_container(container)

    def _create_mount_namespace(self, container: Container) -> None:
        """Make the container's mount namespace and record its path in ``container``.

        It binds the resolv.conf and hosts of the container whose network namespace it uses
        (its own, or the other's in container:<name> mode), made empty here if missing.
        """
        directory = self.paths.container_dir(container.shares_namespace_of or container.id)
        resolv_conf, hosts = ensure_container_files(directory)
        container.mnt_path = self.sandboxes.create_mount(
            container.id, container.netns_path, resolv_conf, hosts
        )

    def _recorded_start(self, container: Container) -> int | None:
        return container.process_start_time or None

    # Networks

    def create_network(self, request: NetworkCreate) -> Network:
        """Create a network from ``request`` (``network create``) and return its record.

        A bridge network gets its bridge and its firewall elements at once; an overlay network is
        recorded in the cluster store, and a host makes its data plane with its first endpoint.
        Refused as Docker refuses: Forbidden for a pre-defined name or a bridge subnet that
        overlaps another network's, Conflict for a name, bridge, VNI or overlay subnet in use,
        NotFound for an unknown driver, InvalidArgument for bad options or IPAM; Unavailable when
        the kernel or the cluster store cannot do it. The local steps done are undone on failure.
        """
        if request.name in ("bridge", "host", "none"):
            raise Forbidden(f"cannot create network '{request.name}': it is a pre-defined network")
        if request.driver == "overlay":
            return self._create_overlay_network(request)
        return self._create_network_record(request, builtin=False)

    def _create_network_record(self, request: NetworkCreate, builtin: bool) -> Network:
        name = request.name
        check_network_request(request)
        driver = self.drivers.get(request.driver)
        if driver is None:
            raise NotFound(
                f"cannot create network '{name}': plugin \"{request.driver}\" not found"
            )
        if any(network.name == name for network in self.store.networks()):
            raise Conflict(f"network with name {name} already exists")
        driver.validate(request)
        configs = self._ipam_configs(request)
        if request.ipam_options:
            # Docker's default IPAM driver stores options it does not know and shows them.
            log.warning(
                "network %s: IPAM options %s are kept but have no effect",
                name,
                ", ".join(sorted(request.ipam_options)),
            )

        network = Network(
            id=new_id(),
            name=name,
            driver=request.driver,
            created=now(),
            internal=request.internal,
            attachable=request.attachable,
            ipam_options=dict(request.ipam_options),
            ipam=configs,
            options=dict(request.options),
            labels=dict(request.labels),
        )
        bridge_name = network.bridge_name
        if bridge_name and any(
            other.bridge_name == bridge_name for other in self.store.networks()
        ):
            raise Conflict(
                f"cannot create network '{name}': bridge '{bridge_name}' is used by another "
                "network"
            )

        with self.store.transaction(), contextlib.ExitStack() as undo:
            failpoints.hit("create_network.store")
            self.store.put_network(network)
            driver.create(network)
            undo.callback(driver.delete, network)
            # The built-in bridge is made at start-up, before the tables are rendered whole.
            if network.driver == "bridge" and not builtin:
                failpoints.hit("create_network.firewall")
                self.firewall.add_network(self._firewall_network(network))
            undo.pop_all()
        log.info("network %s created (%s, %s)", name, network.driver, network.id[:12])
        return network

    def _ipam_configs(self, request: NetworkCreate) -> list[IpamConfig]:
        name = request.name
        if request.driver != "bridge":
            return []
        if len(request.ipam) > 1:
            raise InvalidArgument(
                f"cannot create network '{name}': only one IPv4 subnet per network is supported"
            )
        existing = [config.subnet for network in self.store.networks() for config in network.ipam]
        if not request.ipam or request.ipam[0].subnet is None:
            given = request.ipam[0] if request.ipam else None
            if given and (given.gateway or given.ip_range or given.aux_addresses):
                raise InvalidArgument(
                    f"cannot create network '{name}': a gateway, ip-range or auxiliary "
                    "address needs a subnet"
                )
            subnet = ipam.choose_subnet(existing, self._host_routes())
            return [ipam.complete(IpamConfig(subnet=subnet), name)]
        config = ipam.complete(request.ipam[0], name)
        # Docker 20.10 shows a gateway in inspect only when it was asked for.
        config.gateway_chosen = request.ipam[0].gateway is None
        for other in existing:
            if config.subnet.overlaps(other):
                raise Forbidden(  # Docker's status for a pool overlap
                    f"cannot create network '{name}': subnet {config.subnet} overlaps with "
                    f"{other} of another network"
                )
        return [config]

    def list_networks(self) -> list[Network]:
        """Every network in the local store, in the order this host recorded them.

        The cluster's overlay networks are copied in first, when a cluster store is reachable.
        """
        self._sync_overlay_networks()
        return self.store.networks()

    def get_network(self, ref: str) -> Network:
        """A network by full id, name, or unique id prefix (in Docker's order)."""
        networks = self.store.networks()
        for network in networks:
            if network.id == ref:
                return network
        for network in networks:
            if network.name == ref:
                return network
        matches = [network for network in networks if ref and network.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NotFound(f"network {ref} is ambiguous ({len(matches)} matches found on id)")
        if self._sync_overlay_networks():  # perhaps made on another host a moment ago
            return self.get_network(ref)
        raise NotFound(f"network {ref} not found")

    def remove_network(self, ref: str) -> None:
        """Remove a network (``network rm``): its record, firewall elements, bridge or data plane.

        ``ref`` is an id, a name or a unique id prefix. NotFound when there is no such network;
        Forbidden for a pre-defined network or one with endpoints on this host; Conflict for an
        overlay network with endpoints on another host, which is asked of the cluster store
        before anything local changes.
        """
        network = self.get_network(ref)
        if network.builtin:
            raise Forbidden(f"{network.name} is a pre-defined network and cannot be removed")
        attached = self.network_endpoints(network.id)
        if attached:
            names = ", ".join(container.name for container, _ in attached)
            raise Forbidden(
                f"error while removing network: network {network.name} id {network.id} has "
                f"active endpoints ({names})"
            )
        if network.driver == "overlay" and self.cluster is not None:
            self.cluster.delete_network(network)  # refused while another host has endpoints

        with self.store.transaction(), contextlib.ExitStack() as undo:
            self.store.delete_network(network.id)
            failpoints.hit("remove_network.firewall")
            if network.driver == "bridge":
                rules = self._firewall_network(network)
                self.firewall.remove_network(rules)
                undo.callback(self.firewall.add_network, rules)
            failpoints.hit("remove_network.bridge")
            self.drivers[network.driver].delete(network)
            undo.pop_all()
        log.info("network %s removed", network.name)

    # Firewall

    @staticmethod
    def _firewall_network(network: Network) -> BridgeNetwork:
        config = network.ipam[0]
        return BridgeNetwork(
            name=network.name,
            bridge=network.bridge_name,
            subnet=config.subnet,
            gateway=config.gateway,
            internal=network.internal,
            icc=network.option_enabled(OPT_ENABLE_ICC),
            masquerade=network.option_enabled(OPT_ENABLE_IP_MASQUERADE),
        )

    def _bindings_of(
        self, container: Container, endpoint: Endpoint | None = None
    ) -> list[Binding]:
        """The container's published ports, aimed at its endpoint on its own network.

        Ports are published through the network the container was created on; while it is
        disconnected from that network they are not.
        """
        if not container.ports:
            return []
        if endpoint is None:
            endpoint, network = self._mode_endpoint(container)
        else:
            network = self.store.network(endpoint.network_id)
        if network is not None and network.driver == "overlay":
            # Published through the gateway bridge, as Docker does through docker_gwbridge.
            endpoint, network = self._gateway_bridge_endpoint(container)
        if endpoint is None or network is None:
            return []
        return self._port_bindings(container, endpoint, network)

    @staticmethod
    def _port_bindings(
        container: Container, endpoint: Endpoint, network: Network
    ) -> list[Binding]:
        """The container's ports with a host port, aimed at ``endpoint`` on ``network``."""
        return [
            Binding(
                host_ip=IPv4Address(port.host_ip or "0.0.0.0"),
                host_port=port.host_port,
                protocol=port.protocol,
                container_ip=endpoint.address,
                container_port=port.container_port,
                bridge=network.bridge_name,
            )
            for port in container.ports
            if port.host_port
        ]

    def _live_bindings_of(self, container: Container) -> list[Binding]:
        """The bindings the firewall holds for the container: none once it has exited.

        As in Docker, a stopped container frees its host ports; starting it takes them again.
        """
        return [] if container.state == "exited" else self._bindings_of(container)

    def _mode_endpoint(self, container: Container) -> tuple[Endpoint | None, Network | None]:
        """The container's endpoint on the network it was created on, if still connected."""
        for network, endpoint in self.container_endpoints(container.id):
            if network.name == container.network_mode:
                return endpoint, network
        return None, None

    def _published(self, exclude: str = "") -> dict[Binding, str]:
        """Every published binding, with the name of the container that holds it.

        Three store reads whatever the number of containers (a read per container made the
        1,000th published port cost ten times the first, issue 3 point 4).
        """
        networks = {network.id: network for network in self.store.networks()}
        mode_endpoints: dict[tuple[str, str], Endpoint] = {}  # (container id, network name)
        for endpoint in self.store.endpoints():
            network = networks.get(endpoint.network_id)
            if network is not None:
                mode_endpoints[(endpoint.container_id, network.name)] = endpoint

        published = {}
        for container in self.store.containers():
            if container.id == exclude or not container.ports or container.state == "exited":
                continue
            endpoint = mode_endpoints.get((container.id, container.network_mode))
            if endpoint is None:
                continue
            network = networks[endpoint.network_id]
            if network.driver == "overlay":
                bindings = self._bindings_of(container)  # through its gateway bridge
            else:
                bindings = self._port_bindings(container, endpoint, network)
            for binding in bindings:
                published[binding] = container.name
        return published

    def _choose_host_ports(self, container: Container) -> None:
        """Give each requested port binding a host port: check a fixed one, choose a free one.

        What is published comes from the firewall's record of its maps, so that checking a
        fixed port costs the same however many are published (issue 3, point 4); the store is
        read only to name the holder of a port that may clash, and every binding only to
        choose a free port.
        """
        mine: dict[Binding, str] = {}  # this container's ports, as they get host ports
        # The same, by (protocol, host port): a port given twice is found without a scan.
        mine_by_port: dict[tuple[str, int], dict[Binding, str]] = {}
        published: set[Binding] | None = None  # every binding, read when a port is chosen
        sockets: dict[str, list[host_ports.Listener]] = {}  # per protocol, read once per create

        def every_binding() -> set[Binding]:
            nonlocal published
            if published is None:
                published = set(self.firewall.bindings) | set(mine)
            return published

        def host_sockets(protocol: str) -> list[host_ports.Listener]:
            if protocol not in sockets:
                sockets[protocol] = host_ports.listeners(protocol)
            return sockets[protocol]

        local_addresses: set[IPv4Address] = set()
        for port in container.ports:
            host_ip = IPv4Address(port.host_ip or "0.0.0.0")
            spec = f"{port.container_port}/{port.protocol}"
            host_ports.check_protocol_supported(port.protocol, spec)
            if host_ip not in local_addresses:
                host_ports.check_host_address(host_ip, f"{host_ip}:{port.host_port or ''}:{spec}")
                local_addresses.add(host_ip)
            if port.host_port and port.host_port_last > port.host_port:
                port.host_port = host_ports.choose_host_port(
                    port.protocol,
                    host_ip,
                    every_binding(),
                    port.host_port,
                    port.host_port_last,
                    host_sockets(port.protocol),
                )
            elif port.host_port:
                twins = mine_by_port.get((port.protocol, port.host_port), {})
                if host_ports.port_holder(port.protocol, host_ip, port.host_port, twins, []):
                    raise InvalidArgument(
                        f"cannot publish port '{host_ip}:{port.host_port}/{port.protocol}': "
                        "it is given twice"
                    )
                holders = {}
                if self.firewall.bindings_on(port.protocol, port.host_port):
                    holders = self._published(exclude=container.id)
                host_ports.check_host_port_free(
                    port.protocol, host_ip, port.host_port, holders, host_sockets(port.protocol)
                )
            else:
                port.host_port = host_ports.choose_host_port(
                    port.protocol, host_ip, every_binding(), sockets=host_sockets(port.protocol)
                )
            port.host_port_last = 0
            binding = Binding(
                host_ip, port.host_port, port.protocol, host_ip, port.container_port, ""
            )
            if published is not None:
                published.add(binding)
            mine[binding] = container.name
            mine_by_port.setdefault((port.protocol, port.host_port), {})[binding] = container.name

    def _update_dns(self, container: Container) -> None:
        """Refresh the container's names, DNS listener and resolv.conf/hosts files."""
        if container.shares_namespace_of:
            return
        try:
            self.dns.update(
                container,
                self.container_endpoints(container.id),
                self.paths.container_dir(container.id),
            )
        except (NsnetError, OSError) as error:
            log.warning("container %s: cannot update its DNS: %s", container.name, error)

    def _flush_conntrack(self, address: IPv4Address) -> None:
        """Forget the flows of an address that is going away, so none outlives it."""
        try:
            self.firewall.flush_container_conntrack(address)
        except NsnetError as error:
            # Reconcile forgets the flows of addresses that no endpoint holds at its next run.
            log.warning("cannot flush conntrack entries of %s: %s", address, error)

    def info(self) -> dict:
        """The daemon's view of itself for `nsnet info`: paths, firewall, warnings."""
        state = self.firewall.state()
        warnings = list(self.warnings)
        foreign_drop = self._check_foreign_firewall()
        if foreign_drop:
            warnings.append(foreign_drop)
        if f"{INET} {TABLE}" not in state.tables:
            warnings.append(
                f"firewall table '{INET} {TABLE}' is missing (flushed by someone else?): "
                "published ports, masquerade and isolation are off until nsnetd restarts"
            )
        if read_sysctl("net.ipv4.ip_forward") != "1":
            warnings.append(
                "IPv4 forwarding is disabled in the host namespace (net.ipv4.ip_forward = 0, "
                "set by someone else): containers cannot reach the outside until nsnetd restarts"
            )
        if self.cluster is not None and not self.cluster.reachable:
            warnings.append(
                f"the cluster store {self.cluster.config.store_url} does not answer: overlay "
                "networks cannot be created, joined or learned until it does"
                + ("" if self.cluster.lease else " (this host has not joined it yet)")
            )
        return {
            "StateDirectory": str(self.paths.state_dir),
            "RunDirectory": str(self.paths.run_dir),
            "Firewall": {
                "Tables": list(state.tables),
                "Rules": state.rules,
                "Elements": dict(state.elements),
            },
            "Cluster": self._cluster_info(),
            "Warnings": warnings,
        }

    def prune_networks(self, prunable: Callable[[Network], bool] | None = None) -> list[str]:
        """Remove user networks with no endpoints (that pass ``prunable``); return their names."""
        removed = []
        for network in self.store.networks():
            if network.builtin or self.store.endpoint_count(network.id):
                continue
            if prunable is not None and not prunable(network):
                continue
            try:
                self.remove_network(network.id)
            except Conflict:
                if network.driver != "overlay":
                    raise
                continue  # other hosts still have endpoints on it
            removed.append(network.name)
        return removed

    def network_endpoints(self, network_id: str) -> list[tuple[Container, Endpoint]]:
        """The network's containers on this host with their endpoints, in the order they joined."""
        pairs = []
        for endpoint in self.store.endpoints(network_id=network_id):
            container = self.store.container(endpoint.container_id)
            if container is not None:
                pairs.append((container, endpoint))
        return pairs

    # Endpoints

    def connect(
        self,
        network_ref: str,
        container_ref: str,
        ip_address: str | None = None,
        aliases: list[str] | None = None,
    ) -> Endpoint:
        """Connect a container to a network (``network connect``) and return the new endpoint.

        ``ip_address`` pins the endpoint's address (not on the default bridge); ``aliases`` are
        more names for it in the embedded DNS on this network. The endpoint is the container's
        next free ``ethN``; it gives the default route when the container has none yet and the
        network is not internal; the container's published ports come back when this is the
        network it was created on. InvalidArgument for a host, none or container:<name>
        container and for a network that takes no endpoints; Forbidden when it is connected
        already or the address is taken or reserved. A failed connect leaves nothing behind.
        """
        container = self.get_container(container_ref)  # Docker reports the container first
        network = self.get_network(network_ref)
        refusal = {
            "host": "container cannot be disconnected from host network or connected to host "
            "network",
            "none": "container cannot be connected to multiple networks with one of the "
            "networks in private (none) mode",
        }.get(container.network_mode)
        if container.shares_namespace_of:
            refusal = (
                "container sharing network namespace with another container or host cannot be "
                "connected to any other network"
            )
        # Docker answers these with 400 (bad request), the states before with 403.
        if refusal:
            raise InvalidArgument(
                f"cannot connect container '{container.name}' to network '{network.name}': "
                f"{refusal}"
            )
        if network.driver not in ("bridge", "overlay"):
            raise InvalidArgument(
                f"cannot connect container '{container.name}' to network '{network.name}': "
                f"container cannot be connected to {network.name} network"
            )
        if bad_alias := alias_problem(aliases or []):
            raise InvalidArgument(
                f"cannot connect container '{container.name}' to network '{network.name}': "
                f"{bad_alias}"
            )
        if aliases and network.name == "bridge":
            raise InvalidArgument(
                f"cannot connect container '{container.name}' to network '{network.name}': "
                "network-scoped alias is supported only for containers in user defined networks"
            )
        self._prepare_network(network)
        with self.store.transaction(), contextlib.ExitStack() as undo:
            publishes = (
                network.name == container.network_mode
                and container.ports
                and container.state != "exited"
            )
            if publishes:
                # Back on its own network: its host ports may have been taken while it was away
                # (the firewall would refuse with nothing but "File exists"). Only checks:
                # every port got its host port at create.
                self._choose_host_ports(container)
            endpoint = self._join(network, container, ip_address, container.mac_address, aliases)
            if publishes:
                undo.callback(self._undo_join, network, container, endpoint)
                failpoints.hit("connect.ports")
                self.firewall.add_bindings(self._bindings_of(container, endpoint))
            undo.pop_all()
        self._update_dns(container)
        return endpoint

    def _join(
        self,
        network: Network,
        container: Container,
        ip_address: str | None,
        mac_address: str | None,
        aliases: list[str] | None,
        ifname: str | None = None,
        cni_network: str = "",
    ) -> Endpoint:
        """Allocate, record and plug one endpoint; the caller owns the store transaction.

        The container's interface is ``ifname`` when given (a CNI runtime names it), else its
        next free ``ethN``.
        """
        mine = self.store.endpoints(container_id=container.id)
        if any(endpoint.network_id == network.id for endpoint in mine):
            raise Forbidden(
                f"endpoint with name {container.name} already exists in network {network.name}"
            )
        if network.driver == "overlay":
            return self._join_overlay(network, container, ip_address, mac_address, aliases, mine)

        failpoints.hit("connect.allocate")
        config = network.ipam[0]
        allocated = self.store.allocated(network.id)
        if ip_address:
            if network.name == "bridge":
                raise InvalidArgument(
                    "user specified IP address is supported on user defined networks only"
                )
            address = ipam.parse_address(ip_address, "IPv4 address")
            try:
                ipam.check_static(config, address, allocated)
            except NsnetError as error:
                # An address taken or reserved is Docker's 403; one outside the subnet its 400.
                category = Forbidden if isinstance(error, Conflict) else type(error)
                raise category(
                    f"cannot connect container '{container.name}' to network "
                    f"'{network.name}': {error}"
                ) from error
        else:
            try:
                address = ipam.next_free(config, allocated)
            except Conflict as error:
                raise Conflict(
                    f"cannot connect container '{container.name}' to network "
                    f"'{network.name}': {error}"
                ) from error

        endpoint_id = new_id()
        used_ifnames = {endpoint.container_ifname for endpoint in mine}
        endpoint = Endpoint(
            id=endpoint_id,
            network_id=network.id,
            container_id=container.id,
            container_ifname=ifname
            or next(
                f"eth{number}"
                for number in range(len(mine) + 1)
                if f"eth{number}" not in used_ifnames
            ),
            host_ifname=self._new_host_ifname(),
            mac_address=(mac_address or mac_from_address(address)).lower(),
            address=address,
            prefixlen=config.subnet.prefixlen,
            gateway=None if network.internal else config.gateway,
            aliases=list(aliases or []),
            static_address=bool(ip_address),
            cni_network=cni_network,
        )
        self.store.allocate(network.id, address, endpoint.id)
        self.store.put_endpoint(endpoint)

        failpoints.hit("connect.store")
        self.drivers[network.driver].join(
            network,
            endpoint,
            container.netns_path,
            self._wants_default_route(container, network, exclude=endpoint.id),
        )
        log.info(
            "container %s: connected to network %s as %s (%s)",
            container.name,
            network.name,
            endpoint.container_ifname,
            address,
        )
        return endpoint

    def _wants_default_route(self, container: Container, network: Network, exclude: str) -> bool:
        """The first non-internal network a container joins gives it its default route.

        In a CNI runtime's namespace, not when it has one already (another plugin's).
        """
        if network.internal:
            return False
        for endpoint in self.store.endpoints(container_id=container.id):
            if endpoint.id != exclude and endpoint.gateway is not None:
                return False
        return not container.cni_id or not self._has_default_route(container)

    def _has_default_route(self, container: Container) -> bool:
        return self._sandbox_netlink(container.netns_path).default_route_link() is not None

    @staticmethod
    def _holds_default_route(endpoints: list[Endpoint], endpoint: Endpoint) -> bool:
        """Whether ``endpoint`` gives its container the default route.

        That is the first of the container's endpoints (in the order they joined) that has a
        gateway, whatever endpoints joined after it.
        """
        first = next((each for each in endpoints if each.gateway is not None), None)
        return first is not None and first.id == endpoint.id

    def _new_host_ifname(self) -> str:
        """A fresh ``veth<7 hex>`` name that no endpoint holds."""
        while True:
            ifname = "veth" + secrets.token_hex(4)[:7]
            # 28 random bits; a clash with a foreign link fails the create with a clear error.
            if not self.store.host_ifname_taken(ifname):
                return ifname

    def disconnect(self, network_ref: str, container_ref: str, force: bool = False) -> None:
        """Disconnect a container from a network (``network disconnect``).

        The address is released, the container's published ports are withdrawn when this is the
        network it was created on, and if this endpoint gave the default route, the route moves
        to the next endpoint with a gateway. The veth pair is unplugged at once and deleted in
        the background. NotFound when the container is not connected to the network. With
        ``force`` a failure to unplug the interface does not keep the endpoint: its records go
        and the next reconcile removes the interface.
        """
        network = self.get_network(network_ref)
        container = self.get_container(container_ref)
        endpoint = next(
            (
                endpoint
                for endpoint in self.store.endpoints(
                    network_id=network.id, container_id=container.id
                )
            ),
            None,
        )
        if endpoint is None:
            raise NotFound(
                f"container {container.name} is not connected to network {network.name}"
            )
        # An exited container's ports are unpublished already (and must stay so on a failure).
        bindings = [] if container.state == "exited" else self._bindings_of(container, endpoint)
        gave_default_route = self._holds_default_route(
            self.store.endpoints(container_id=container.id), endpoint
        )
        with self.store.transaction(), contextlib.ExitStack() as undo:
            self._forget_endpoint(network, endpoint)
            if network.name == container.network_mode and bindings:
                self.firewall.remove_bindings(bindings)
                undo.callback(self.firewall.add_bindings, bindings)
            # Last step: if it fails, the records come back and a retry finds the interface;
            # forced (Docker's -f, for an endpoint in a bad state), the records go anyway and
            # the next reconcile removes the interface, which keeps the endpoint's mark.
            try:
                failpoints.hit("disconnect.kernel")
                self.drivers[network.driver].leave(network, endpoint, container.netns_path)
            except NsnetError as error:
                if not force:
                    raise
                log.warning(
                    "container %s: forced off network %s; its interface is left to the next "
                    "reconcile: %s",
                    container.name,
                    network.name,
                    error,
                )
            undo.pop_all()
        if gave_default_route:
            self._move_default_route(container)
        self._flush_conntrack(endpoint.address)
        self._update_dns(container)
        log.info("container %s: disconnected from network %s", container.name, network.name)
        if network.driver == "overlay":
            self._leave_gateway_bridge(container)

    def _move_default_route(self, container: Container) -> None:
        """Route by the next endpoint with a gateway once the one that gave the route left.

        As Docker does; the disconnect itself is done, so a failure here is only logged.
        """
        endpoints = self.store.endpoints(container_id=container.id)
        successor = next((each for each in endpoints if each.gateway is not None), None)
        if successor is None:
            return
        try:
            sandbox = self._sandbox_netlink(container.netns_path)
            index = sandbox.link_index(successor.container_ifname)
            sandbox.add_default_route(successor.gateway, index)
        except NsnetError as error:
            log.warning("container %s: cannot move its default route: %s", container.name, error)

    def _forget_endpoint(self, network: Network, endpoint: Endpoint) -> None:
        """Release the endpoint's address and delete its record (inside a transaction)."""
        self.store.release(network.id, endpoint.address)
        self.store.delete_endpoint(endpoint.id)
        if network.driver == "overlay":
            self._forget_overlay_endpoint(network, endpoint)

    # Containers

    def create_container(self, request: ContainerCreate) -> Container:
        """Create a container from ``request`` (``create``, and ``run`` first) and return it.

        Makes its sandbox (network, UTS and mount namespaces; none in host mode, only a mount
        namespace in container:<name> mode), connects it to its network and publishes its ports,
        choosing a free host port where none is given. A name is generated when none is given.
        The command is not started (``start_container``). InvalidArgument for what Docker
        refuses, Conflict for a name in use; a failed create leaves nothing behind.
        """
        name = request.name or self._generate_name()
        if not NAME_PATTERN.fullmatch(name):
            raise InvalidArgument(
                f"cannot create container '{name}': names must match [a-zA-Z0-9][a-zA-Z0-9_.-]+"
            )
        owner = self.store.container_id_named(name)
        if owner is not None:
            raise Conflict(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{owner}". You have to remove (or rename) that container to be able to '
                "reuse that name."
            )
        container_id = new_id()
        mode, network, shared = self._resolve_network_mode(name, request)
        self._validate_container_request(name, request, mode, network)
        ports = list(request.ports)
        if ports and network is None:
            # Docker discards published ports in host mode; in none mode they reach nothing.
            log.warning("container %s: published ports ignored in '%s' mode", name, mode)
            ports = []
        # A port published without a host address takes the network's, as in Docker.
        default_host_ip = (network.options.get(OPT_HOST_BINDING_IPV4) if network else None) or (
            "0.0.0.0"
        )
        ports = [
            port if port.host_ip else dataclasses.replace(port, host_ip=default_host_ip)
            for port in ports
        ]

        container = Container(
            id=container_id,
            name=name,
            created=now(),
            hostname=request.hostname or container_id[:12],
            network_mode=mode,
            command=list(request.command),
            sysctls=dict(request.sysctls),
            mac_address=request.mac_address.lower() if request.mac_address else None,
            ip_address=request.ip_address,
            aliases=list(request.aliases),
            auto_remove=request.auto_remove,
            ports=[dataclasses.replace(port) for port in ports],
            labels=dict(request.labels),
            dns=list(request.dns),
            dns_search=list(request.dns_search),
            dns_options=list(request.dns_options),
            extra_hosts=list(request.extra_hosts),
            tty=request.tty,
        )
        try:
            check_container_dns(container)
        except NsnetError as error:
            raise InvalidArgument(f"cannot create container '{name}': {error}") from error
        if shared is not None:
            container.netns_path, container.uts_path = shared.netns_path, shared.uts_path
            container.hostname = shared.hostname

        if network is not None:
            self._prepare_network(network)
        with self.store.transaction(), contextlib.ExitStack() as undo:
            failpoints.hit("create_container.store")
            self.store.put_container(container)
            if mode != "host" and shared is None:
                failpoints.hit("create_container.sandbox")
                container.netns_path, container.uts_path = self.sandboxes.create(
                    container.id, container.hostname
                )
                undo.callback(self.sandboxes.remove, container.id)
                undo.callback(self._forget_sandbox_netlink, container.netns_path)
                self.store.put_container(container)
                self._prepare_sandbox(container)
            if mode != "host":
                # A container:<name> container too: Docker gives it a file system view of its own.
                failpoints.hit("create_container.mount")
                undo.callback(self._remove_container_files, container.id)
                self._create_mount_namespace(container)
                undo.callback(self.sandboxes.remove_mount, container.id)
                self.store.put_container(container)
            if network is not None:
                failpoints.hit("create_container.endpoint")
                endpoint = self._join(
                    network, container, request.ip_address, container.mac_address, request.aliases
                )
                undo.callback(self._undo_join, network, container, endpoint)
                if container.ports:
                    failpoints.hit("create_container.ports")
                    self._choose_host_ports(container)
                    self.store.put_container(container)
                    bindings = self._bindings_of(container, endpoint)
                    self.firewall.add_bindings(bindings)
                    undo.callback(self.firewall.remove_bindings, bindings)
            failpoints.hit("create_container.commit")
            self.paths.container_dir(container.id).mkdir(mode=0o700, exist_ok=True)
            undo.pop_all()
        self._update_dns(container)
        log.info("container %s created (%s, %s)", name, mode, container.id[:12])
        return container

    def _resolve_network_mode(
        self, name: str, request: ContainerCreate
    ) -> tuple[str, Network | None, Container | None]:
        """The stored network mode, the network to join (if any) and the shared container."""
        requested = request.network or "bridge"
        if requested == "default":
            requested = "bridge"
        if requested.startswith("container:"):
            other = self.get_container(requested.split(":", 1)[1])
            if other.state != "running":
                raise Conflict(
                    f"cannot create container '{name}': cannot join the network namespace of "
                    f"container '{other.name}': it is not running"
                )
            if other.network_mode == "host" or other.shares_namespace_of:
                raise InvalidArgument(
                    f"cannot create container '{name}': container '{other.name}' does not own "
                    "a network namespace to share"
                )
            return f"container:{other.id}", None, other
        network = self.get_network(requested)
        if network.driver == "host":
            return "host", None, None
        if network.driver == "null":
            return "none", None, None
        return network.name, network, None

    def _validate_container_request(
        self, name: str, request: ContainerCreate, mode: str, network: Network | None
    ) -> None:
        problem = None
        if mode == "host" or mode.startswith("container:"):
            if request.hostname:
                problem = f"conflicting options: hostname and the network mode '{mode}'"
            elif request.sysctls:
                problem = f"sysctls cannot be set in network mode '{mode}'"
        if mode.startswith("container:") and request.ports:
            problem = "conflicting options: port publishing and the container type network mode"
        if mode.startswith("container:") and (
            request.dns or request.dns_search or request.dns_options
        ):
            problem = "conflicting options: dns and the network mode"  # Docker's words
        elif mode.startswith("container:") and request.extra_hosts:
            problem = "conflicting options: custom host-to-IP mapping and the network mode"
        elif mode == "host" and (
            request.dns or request.dns_search or request.dns_options or request.extra_hosts
        ):
            # Docker writes such a container files of its own; nsnet's host-mode containers
            # share the host's mount namespace, and with it the host's /etc files.
            problem = (
                "--dns, --dns-search, --dns-option and --add-host cannot be used in network "
                "mode 'host': its containers use the host's own /etc/resolv.conf and /etc/hosts"
            )
        if network is None and (request.ip_address or request.mac_address or request.aliases):
            problem = f"--ip, --mac-address and aliases need a bridge network, not '{mode}'"
        if request.mac_address and (bad_mac := mac_problem(request.mac_address)):
            problem = bad_mac
        if (
            request.ports
            and network is not None
            and network.driver == "overlay"
            and network.internal
        ):
            # Its containers have no gateway bridge to publish through.
            problem = f"ports cannot be published from internal overlay network '{mode}'"
        if bad_alias := alias_problem(request.aliases):
            problem = bad_alias
        elif request.aliases and network is not None and network.name == "bridge":
            problem = (
                "network-scoped alias is supported only for containers in user defined networks"
            )
        for key in request.sysctls:
            if not key.startswith("net."):
                problem = (
                    f"sysctl '{key}' is not allowed: only namespaced net.* sysctls can be set"
                )
        if request.hostname is not None and not re.fullmatch(
            r"[a-zA-Z0-9][a-zA-Z0-9.-]{0,62}", request.hostname
        ):
            problem = f"invalid hostname '{request.hostname}'"
        if problem:
            raise InvalidArgument(f"cannot create container '{name}': {problem}")

    def _prepare_sandbox(self, container: Container) -> None:
        """Turn IPv6 off, bring ``lo`` up and apply the container's sysctls in its sandbox.

        IPv6 is off as in Docker's containers on IPv4-only networks (every network is, until
        nsnet has IPv6): no link-local addresses, and no neighbour discovery or multicast
        reports flooded to every port of the bridge whenever an interface appears. A
        ``--sysctl net.ipv6.conf.all.disable_ipv6=0`` turns it back on, as in Docker.
        """
        for scope in ("all", "default"):
            with contextlib.suppress(NotFound):  # a kernel without IPv6
                write_sysctl(f"net.ipv6.conf.{scope}.disable_ipv6", "1", container.netns_path)
        sandbox = self._sandbox_netlink(container.netns_path)
        sandbox.set_up("lo")
        for key, value in container.sysctls.items():
            write_sysctl(key, value, container.netns_path)

    def _generate_name(self) -> str:
        from nsnet.names import random_name

        taken = self.store.container_names()
        while True:
            name = random_name()
            if name not in taken:
                return name

    def list_containers(self, all: bool = False) -> list[Container]:
        """The running containers, or every one with ``all``, in the order they were created."""
        containers = self.store.containers()
        return [c for c in containers if all or c.state == "running"]

    def get_container(self, ref: str) -> Container:
        """A container by full id, name, or unique id prefix."""
        ref = (ref or "").lstrip("/")
        if len(ref) == 64:
            found = self.store.container(ref)
            if found is not None:
                return found
        owner = self.store.container_id_named(ref)
        if owner is not None:
            return self.store.container(owner)
        matches = self.store.containers_with_id_prefix(ref)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NotFound(f"container {ref} is ambiguous: more than one container's id starts so")
        raise NotFound(f"No such container: {ref}")

    def container_endpoints(self, container_id: str) -> list[tuple[Network, Endpoint]]:
        """The container's endpoints with their networks, in the order they joined."""
        pairs = []
        for endpoint in self.store.endpoints(container_id=container_id):
            network = self.store.network(endpoint.network_id)
            if network is not None:
                pairs.append((network, endpoint))
        return pairs

    # Processes

    def start_container(self, ref: str) -> Container:
        """Start the container's command detached, supervised by the daemon (``run -d``)."""
        container = self.get_container(ref)
        if container.state == "running":
            return container
        if not container.command:
            raise InvalidArgument(f"cannot start container '{container.name}': it has no command")
        log_path = self.paths.container_dir(container.id) / OUTPUT_LOG
        log_path.parent.mkdir(mode=0o700, exist_ok=True)

        with contextlib.ExitStack() as undo:
            # An exited container freed its host ports: take them again, unless taken.
            republished = self._bindings_of(container) if container.state == "exited" else []
            if republished:
                try:
                    self._choose_host_ports(container)  # only checks: each has its host port
                except Conflict as error:
                    raise Conflict(
                        f"cannot start container '{container.name}': {error}"
                    ) from error
                self.firewall.add_bindings(republished)
                undo.callback(self.firewall.remove_bindings, republished)

            failpoints.hit("start_container.spawn")
            process = self._spawn(container, log_path)
            undo.pop_all()
        self._children[process.pid] = container.id
        self._popens[process.pid] = process
        self._record_running(container, process.pid, detached=True)
        log.info("container %s: started process %d", container.name, process.pid)
        return container

    def _spawn(self, container: Container, log_path: Path) -> subprocess.Popen:
        """Start the container's command, its output to ``log_path``; raise if it cannot exec."""
        status_read, status_write = os.pipe()
        try:
            with open(log_path, "ab") as output:
                process = subprocess.Popen(
                    self.enter_command(container.id, container.command, status_write),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=(status_write,),
                )
        except OSError as error:
            os.close(status_read)
            message = f"cannot start container '{container.name}': {error.strerror}"
            raise NsnetError(message) from error
        finally:
            os.close(status_write)
        failure = read_start_failure(status_read)
        if failure:
            process.wait()
            # The container stays as it was, as Docker leaves one whose command cannot start.
            raise InvalidArgument(f"cannot start container '{container.name}': {failure}")
        return process

    def _record_running(self, container: Container, pid: int, detached: bool) -> None:
        start_time = process_start_time(pid) or 0
        restarted = container.state == "exited"  # its names had left the index
        container.state = "running"
        container.pid = pid
        container.exit_code = 0
        container.detached = detached
        container.started_at = now()
        container.finished_at = ""
        container.process_start_time = start_time
        self._watched[container.id] = (pid, start_time)
        if not detached:  # a client's process: not ours to wait for
            self._exits.add(container.id, pid, start_time)
            self._client_runs.add(container.id)
        with self.store.transaction():
            self.store.put_container(container)
        if restarted:
            self._announce_state(container)

    def enter_command(
        self, ref: str, command: list[str], status_fd: int | None = None
    ) -> list[str]:
        """The argv that runs ``command`` inside the container's sandbox (run, exec)."""
        container = self.get_container(ref)
        if not command:
            raise InvalidArgument(f"cannot run in container '{container.name}': no command given")
        return self.sandboxes.enter_argv(
            command,
            container.netns_path,
            container.uts_path,
            container.mnt_path,
            status_fd=status_fd,
        )

    def attach_process(self, ref: str, pid: int) -> Container:
        """Record that a client started the container's process itself (foreground run)."""
        container = self.get_container(ref)
        if process_start_time(pid) is None:
            raise InvalidArgument(f"cannot attach process {pid}: no such process")
        self._record_running(container, pid, detached=False)
        return container

    def process_exited(self, ref: str, exit_code: int) -> Container:
        """Record the exit of a client-started process."""
        container = self.get_container(ref)
        if container.state == "running":
            self._mark_exited(container, exit_code)
        return container

    def _mark_exited(self, container: Container, exit_code: int) -> None:
        bindings = self._live_bindings_of(container)
        container.state = "exited"
        container.exit_code = exit_code
        container.finished_at = now()
        self._forget_process(container.id)
        with self.store.transaction():
            self.store.put_container(container)
        log.info("container %s: process %d exited (%d)", container.name, container.pid, exit_code)
        self._announce_state(container)
        self._end_leftover_processes(container)
        try:
            self.firewall.remove_bindings(bindings)  # its host ports are free again
        except NsnetError as error:
            # The next start of the daemon renders the tables from the store again.
            log.warning("container %s: cannot unpublish its ports: %s", container.name, error)

    def _end_leftover_processes(self, container: Container) -> None:
        """Kill what the container's process left running (daemons it forked, exec'd
        commands): a Docker container's processes end with its first one, as its pid
        namespace does. They are found by the container's mount namespace; a host-mode
        container has none of its own, so only its process is the container's.
        """
        if not container.mnt_path:
            return
        try:
            leftovers = namespace.processes_in(container.mnt_path, "mnt")
        except OSError:
            return  # the namespace is gone, and with it every process in it
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if leftovers:
            log.info(
                "container %s: killed %d processes its process left running",
                container.name,
                len(leftovers),
            )

    def reap(self) -> list[str]:
        """Notice processes that ended; return the ids of the containers that stopped.

        The daemon calls this every half second on the engine's thread, so the cluster
        changes that need the local store are applied here too.
        """
        self._cluster_tick()
        self._forget_vanished_cni_containers()
        ended: dict[str, int] = {}
        while self._children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self._children.clear()
                self._popens.clear()
                break
            if pid == 0:
                break
            self._waited(pid, status)
            container_id = self._children.pop(pid, None)
            if container_id is not None:
                ended[container_id] = os.waitstatus_to_exitcode(status)
                if ended[container_id] < 0:  # killed by a signal: Docker reports 128 + signal
                    ended[container_id] = 128 - ended[container_id]
        child_containers = set(self._children.values())
        gone = self._exits.ended()
        for container_id, (pid, start_time) in list(self._watched.items()):
            if container_id in child_containers or container_id in ended:
                continue
            if container_id in gone or (
                not self._exits.watches(container_id) and process_start_time(pid) != start_time
            ):
                ended[container_id] = UNKNOWN_EXIT_CODE
        for container_id in list(ended):
            if ended[container_id] == UNKNOWN_EXIT_CODE and container_id in self._client_runs:
                # A client's process: its exit code comes from the client a moment later.
                first_seen = self._client_gone.setdefault(container_id, time.monotonic())
                if time.monotonic() - first_seen < CLIENT_EXIT_GRACE:
                    del ended[container_id]

        for container_id, exit_code in ended.items():
            container = self.store.container(container_id)
            if container is None or container.state != "running":
                self._forget_process(container_id)
                continue
            self._mark_exited(container, exit_code)
            if container.auto_remove and container.detached:
                with contextlib.suppress(NsnetError):
                    self.remove_container(container.id)
        return list(ended)

    def _forget_process(self, container_id: str) -> None:
        self._watched.pop(container_id, None)
        self._exits.discard(container_id)
        self._client_runs.discard(container_id)
        self._client_gone.pop(container_id, None)

    def stop_container(self, ref: str, timeout: float = 10) -> Container:
        """Stop the container's process: SIGTERM, then SIGKILL after ``timeout`` s; return it.

        Holds the engine's thread until the process is gone, for up to ``timeout`` + 5 s, so the
        daemon's API stops containers with ``signal_container`` and waits itself. ``timeout`` 0
        sends both signals at once. A container that is not running is returned unchanged; a
        process still there after its SIGKILL is recorded as exited with 137.
        """
        container = self.get_container(ref)
        if container.state != "running":
            return container
        self._signal(container, signal.SIGTERM)
        if not self._wait_for_exit(container, timeout):
            self._signal(container, signal.SIGKILL)
            self._wait_for_exit(container, 5)
        self.reap()
        container = self.get_container(container.id)
        if container.state == "running":
            self._mark_exited(container, 128 + signal.SIGKILL)
        return container

    def signal_container(self, ref: str, signum: int) -> Container:
        """Send ``signum`` to the container's process and return at once.

        For callers that wait themselves (the daemon polls ``reap()`` and ``get_container``
        rather than hold the engine's thread for a whole stop timeout). A container that is
        not running is returned unchanged.
        """
        container = self.get_container(ref)
        if container.state == "running":
            self._signal(container, signum)
        return container

    def _signal(self, container: Container, signum: int) -> None:
        pid, start_time = self._watched.get(container.id, (container.pid, None))
        if start_time is not None and process_start_time(pid) != start_time:
            return  # the pid now belongs to someone else
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    def _waited(self, pid: int, status: int) -> None:
        """Tell the child's Popen that it has been waited for, so that it never waits itself."""
        process = self._popens.pop(pid, None)
        if process is not None:
            process.returncode = os.waitstatus_to_exitcode(status)

    def _wait_for_exit(self, container: Container, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        pid = container.pid
        while time.monotonic() < deadline:
            if pid in self._children:
                with contextlib.suppress(ChildProcessError):
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        self._waited(pid, status)
                        self._children.pop(pid, None)
                        code = os.waitstatus_to_exitcode(status)
                        self._mark_exited(container, 128 - code if code < 0 else code)
                        return True
            elif process_start_time(pid) is None:
                return True
            time.sleep(STOP_POLL_SECONDS)
        return False

    def remove_container(self, ref: str, force: bool = False) -> None:
        """Remove a container (``rm``): endpoints, addresses, published ports, sandbox and files.

        A running container is refused (Conflict) unless ``force``, which stops it first with
        SIGTERM and SIGKILL at once; so is one whose network namespace other containers share.
        The records go in one transaction; the kernel teardown after it goes on past failures,
        which are logged as leftovers (reconcile removes them at the next start), not raised.
        """
        container = self.get_container(ref)
        if container.state == "running":
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {container.id}. Stop the container "
                    "before attempting removal or force remove"
                )
        dependents = self.store.containers_sharing(container.id)
        if dependents:
            raise Conflict(
                f"cannot remove container '{container.name}': containers "
                f"{', '.join(dependents)} share its network namespace"
            )
        if container.state == "running":
            container = self.stop_container(container.id, timeout=0)

        endpoints = self.container_endpoints(container.id)
        bindings = self._live_bindings_of(container)  # an exited one's are gone already
        with self.store.transaction():
            for network, endpoint in endpoints:
                failpoints.hit("remove_container.endpoint")
                self._forget_endpoint(network, endpoint)
            failpoints.hit("remove_container.store")
            self.store.delete_container(container.id)
            # Last before the commit: if it fails, nothing else has changed yet.
            self.firewall.remove_bindings(bindings)

        # The records are gone; the kernel teardown goes on past failures and reports them
        # all (reconcile removes whatever is left, since every object carries nsnet's mark).
        self._forget_process(container.id)
        self.dns.forget(container)
        failures = []
        for network, endpoint in endpoints:
            try:
                self.drivers[network.driver].leave(network, endpoint, None)
                self._flush_conntrack(endpoint.address)
            except NsnetError as error:
                failures.append(str(error))
        if container.network_mode != "host":
            if not container.shares_namespace_of:
                # Close our socket first: an open netlink socket keeps its namespace alive.
                self._forget_sandbox_netlink(container.netns_path)
            try:
                self.sandboxes.remove(container.id)  # a container:<name> one has its .mnt only
            except OSError as error:
                failures.append(f"cannot remove sandbox: {error}")
        try:
            self._remove_container_files(container.id)
        except OSError as error:
            failures.append(f"cannot remove files: {error}")
        if failures:
            log.warning(
                "container %s removed, with leftovers: %s", container.name, "; ".join(failures)
            )
        else:
            log.info("container %s removed", container.name)

    def _remove_container_files(self, container_id: str) -> None:
        directory = self.paths.container_dir(container_id)
        if directory.exists():
            for path in directory.iterdir():
                path.unlink()
            directory.rmdir()

    def log_file(self, ref: str) -> tuple[Container, Path]:
        """The container and the file its detached process writes to (it may not exist yet).

        stdout and stderr go to this one file, in the order written, without times: which
        stream a line came from and when is not kept. A foreground process's output goes to
        the client's terminal and is not kept at all.

        TODO: keeping the streams apart with times (for logs' stderr, timestamps, since and
        until) needs something between the process and the file, a relay that would have to
        outlive the daemon as the process does; the daemon is not in the data path today.
        """
        container = self.get_container(ref)
        return container, self.paths.container_dir(container.id) / OUTPUT_LOG

    def logs(self, ref: str) -> bytes:
        """All the output a container's detached processes wrote (stdout and stderr merged)."""
        _, path = self.log_file(ref)
        return path.read_bytes() if path.exists() else b""

    # Attachments made by a CNI runtime (nsnet-cni)

    def cni_add(self, request: CniAttach) -> tuple[Container, Endpoint]:
        """Attach a runtime's network namespace to a bridge network (CNI ADD).

        The runtime container's first attachment makes its record: a container named ``cni-``
        and 12 hex of its id, in state created, whose ``cni_id`` is the runtime's id. Its ports
        (portMappings) are published through that first network, as a Docker container's
        through the network it was created on; later attachments publish none. The namespace
        stays the runtime's: nsnet adds and removes only its own interfaces there, adds the
        default route only when it has none, and sets ``lo`` up for the embedded DNS on a
        user-defined network. An ADD repeated for an interface it made already (a runtime
        retrying after a lost answer) is answered with that interface. InvalidArgument for a
        bad id, interface name, address or namespace (nsnetd's own, or an nsnet container's)
        and for a network other than a bridge one; Conflict when the namespace has the
        interface already. A failed ADD leaves nothing behind.
        """
        action = f"cannot attach CNI container '{request.runtime_id}'"
        if problem := cni_request_problem(request):
            raise InvalidArgument(f"{action}: {problem}")
        if not namespace.is_network_namespace(request.netns_path):
            raise InvalidArgument(f"{action}: '{request.netns_path}' is not a network namespace")
        netns_inode = namespace.inode(request.netns_path)
        if owner := self._namespace_owner(netns_inode, request.runtime_id):
            raise InvalidArgument(f"{action}: '{request.netns_path}' is {owner}")
        network = self.get_network(request.network)
        action = f"{action} to network '{network.name}'"
        if network.driver != "bridge":
            raise InvalidArgument(
                f"{action}: only bridge networks can be attached through CNI, not "
                f"{network.driver} ones"
            )
        if request.aliases and network.name == "bridge":
            raise InvalidArgument(
                f"{action}: network-scoped alias is supported only for containers in user "
                "defined networks"
            )
        address = self._cni_address(request.ip_address, network, action)

        existing = self.store.container(cni_container_id(request.runtime_id))
        if existing is not None:
            if self._cni_namespace_gone(existing):
                self._forget_cni_container(existing, "its namespace is gone, and a new ADD came")
                existing = None
            elif not self.store.endpoints(container_id=existing.id):
                self._forget_cni_container(existing, "it had no attachment left")
                existing = None
        if existing is not None and existing.cni_netns_inode != netns_inode:
            raise Conflict(
                f"{action}: it is attached already, with namespace '{existing.netns_path}'"
            )
        if existing is not None:
            made = self._cni_endpoint(existing, request.ifname, network)
            if made is not None and (
                (address and str(made.address) != address)
                or (request.mac_address and made.mac_address != request.mac_address.lower())
                or made.cni_network not in ("", request.cni_network or made.cni_network)
            ):
                raise Conflict(
                    f"{action}: interface {request.ifname} is attached already, with address "
                    f"{made.address} and MAC {made.mac_address}, for CNI network "
                    f"'{made.cni_network}'"
                )
            if made is not None:
                log.info(
                    "container %s: ADD of %s repeated; answering with what the first made",
                    existing.name,
                    request.ifname,
                )
                return existing, made
            if request.ports and network.name != existing.network_mode:
                log.info(
                    "container %s: ports are published through its first network %s only; "
                    "those of this attachment are left out",
                    existing.name,
                    existing.network_mode,
                )
        container = existing or self._new_cni_container(request, network, netns_inode)
        # Back on its first network (a DEL took it off): its ports come back, as at connect.
        republishes = (
            existing is not None and network.name == container.network_mode and container.ports
        )

        with self.store.transaction(), contextlib.ExitStack() as undo:
            if existing is None:
                self.store.put_container(container)
                undo.callback(self._forget_sandbox_netlink, container.netns_path)
            sandbox = self._sandbox_netlink(container.netns_path)
            if sandbox.link_index(request.ifname) is not None:
                raise Conflict(
                    f"{action}: interface {request.ifname} exists in '{container.netns_path}'"
                )
            if republishes:
                self._choose_host_ports(container)  # only checks: each has its host port
            endpoint = self._join(
                network,
                container,
                address,
                request.mac_address,
                request.aliases,
                ifname=request.ifname,
                cni_network=request.cni_network,
            )
            undo.callback(self._undo_join, network, container, endpoint)
            if (existing is None or republishes) and container.ports:
                if existing is None:
                    self._choose_host_ports(container)
                    self.store.put_container(container)
                bindings = self._bindings_of(container, endpoint)
                self.firewall.add_bindings(bindings)
                undo.callback(self.firewall.remove_bindings, bindings)
            if network.name != "bridge":
                sandbox.set_up("lo")  # the embedded DNS listens on 127.0.0.11
            self.paths.container_dir(container.id).mkdir(mode=0o700, exist_ok=True)
            undo.pop_all()
        self._cni_present = True
        self._update_dns(container)
        return container, endpoint

    def _new_cni_container(
        self, request: CniAttach, network: Network, netns_inode: int
    ) -> Container:
        container_id = cni_container_id(request.runtime_id)
        default_host_ip = network.options.get(OPT_HOST_BINDING_IPV4) or "0.0.0.0"
        return Container(
            id=container_id,
            name=f"cni-{container_id[:12]}",
            created=now(),
            hostname=container_id[:12],
            network_mode=network.name,
            ports=[
                port if port.host_ip else dataclasses.replace(port, host_ip=default_host_ip)
                for port in request.ports
            ],
            labels={CNI_ID_LABEL: request.runtime_id},  # for ps --filter label=...
            netns_path=request.netns_path,
            cni_id=request.runtime_id,
            cni_netns_inode=netns_inode,
        )

    @staticmethod
    def _cni_address(text: str | None, network: Network, action: str) -> str | None:
        """The address of the ips capability (ADDR or ADDR/PREFIX) without its prefix, which
        must be the network's."""
        if not text or "/" not in text:
            return text
        address, _, prefix = text.partition("/")
        if prefix != str(network.ipam[0].subnet.prefixlen):
            raise InvalidArgument(
                f"{action}: address {text} does not fit: the network's subnet is "
                f"{network.ipam[0].subnet}"
            )
        return address

    def _namespace_owner(self, netns_inode: int, runtime_id: str) -> str | None:
        """Whose a namespace is, if not the runtime's to attach: nsnetd's own, an overlay's,
        or an nsnet container's (another runtime id's included)."""
        if netns_inode == namespace.inode("/proc/thread-self/ns/net"):
            return "the namespace nsnetd runs in"
        for path in self.paths.overlay_dir.glob("*") if self.paths.overlay_dir.exists() else ():
            with contextlib.suppress(OSError):
                if namespace.inode(path) == netns_inode:
                    return "an overlay network's own namespace"
        for name, netns_path, cni_id, cni_inode in self.store.container_namespaces():
            if cni_id == runtime_id:
                continue
            if cni_id:
                same = cni_inode == netns_inode
            else:
                try:
                    same = bool(netns_path) and namespace.inode(netns_path) == netns_inode
                except OSError:
                    same = False
            if same:
                return f"the namespace of nsnet container {name}"
        return None

    @staticmethod
    def _cni_namespace_gone(container: Container) -> bool:
        """Whether the runtime's namespace went (a new one at its path is not it)."""
        try:
            return (
                not namespace.is_network_namespace(container.netns_path)
                or namespace.inode(container.netns_path) != container.cni_netns_inode
            )
        except OSError:
            return True

    def _cni_endpoint(
        self, container: Container, ifname: str, network: Network | None = None
    ) -> Endpoint | None:
        """The container's endpoint with interface ``ifname`` (on ``network``, if given)."""
        return next(
            (
                each
                for each in self.store.endpoints(container_id=container.id)
                if each.container_ifname == ifname
                and (network is None or each.network_id == network.id)
            ),
            None,
        )

    def cni_del(
        self, runtime_id: str, ifname: str, network_ref: str, cni_network: str = ""
    ) -> bool:
        """Detach a runtime container's interface ``ifname`` from a network (CNI DEL); False
        if there was no such attachment.

        Only the attachment of that network (and, when given, made for CNI network
        ``cni_network``): a DEL for another one the interface name was refused on (a runtime
        cleaning up a failed ADD) must leave it alone. As the spec asks, a DEL of what is not
        there is no error, and the runtime's namespace may be gone already. The last interface
        to go takes the container's record with it, as does a DEL for a record left with no
        interface (``network disconnect``).
        """
        container = self.store.container(cni_container_id(runtime_id))
        if container is None or not container.cni_id:
            return False
        try:
            network = self.get_network(network_ref)
        except NotFound:
            network = None  # no attachment can be on it
        endpoint = self._cni_endpoint(container, ifname, network) if network else None
        if endpoint is not None and cni_network and endpoint.cni_network not in ("", cni_network):
            endpoint = None
        if endpoint is not None:
            namespace_gone = self._cni_namespace_gone(container)
            self.disconnect(endpoint.network_id, container.id, force=True)
            if namespace_gone:
                # Unplugging could not enter it. If it only lost its mount (a process still
                # holds it), the pair lives on: its host end goes now.
                self._delete_own_link(endpoint.host_ifname, endpoint.id)
        if not self.store.endpoints(container_id=container.id):
            self.remove_container(container.id, force=True)
        return endpoint is not None

    def cni_check(
        self,
        runtime_id: str,
        ifname: str,
        network_ref: str,
        netns_path: str,
        default_route: bool,
        cni_network: str = "",
    ) -> None:
        """Raise unless the runtime container's ``ifname`` is on the network as made (CHECK).

        ``netns_path`` must be the namespace it was attached in, and ``default_route`` says
        the runtime's previous result holds the default route through it. NotFound when nsnet
        has no such attachment; Unavailable when it lost part of itself: the namespace, either
        end of the pair or its place on the bridge, the interface being up, its address, the
        default route.
        """
        network = self.get_network(network_ref)
        container = self.store.container(cni_container_id(runtime_id))
        if container is None or not container.cni_id:
            raise NotFound(f"CNI container '{runtime_id}' is not attached to any network")
        endpoint = self._cni_endpoint(container, ifname, network)
        if endpoint is not None and cni_network and endpoint.cni_network not in ("", cni_network):
            endpoint = None  # another CNI network's attachment
        if endpoint is None:
            raise NotFound(
                f"CNI container '{runtime_id}' has no interface {ifname} on network "
                f"'{network.name}'" + (f" for CNI network '{cni_network}'" if cni_network else "")
            )
        problem = f"CNI container '{runtime_id}', interface {ifname} on network '{network.name}'"
        if self._cni_namespace_gone(container):
            raise Unavailable(f"{problem}: namespace '{container.netns_path}' is gone")
        if not namespace.is_network_namespace(netns_path) or (
            namespace.inode(netns_path) != container.cni_netns_inode
        ):
            raise Unavailable(
                f"{problem}: it was attached in namespace '{container.netns_path}', not "
                f"'{netns_path}'"
            )
        sandbox = self._sandbox_netlink(container.netns_path)
        index = sandbox.link_index(ifname)
        if index is None:
            raise Unavailable(f"{problem}: the interface is missing")
        host_index = self.host.link_index(endpoint.host_ifname)
        bridge_index = self.host.link_index(network.bridge_name)
        if host_index is None:
            raise Unavailable(f"{problem}: its host end {endpoint.host_ifname} is missing")
        if self.host.link(host_index)["master"] != bridge_index:
            raise Unavailable(
                f"{problem}: its host end {endpoint.host_ifname} is off bridge "
                f"{network.bridge_name}"
            )
        if not sandbox.link(index)["up"]:
            raise Unavailable(f"{problem}: the interface is down")
        if (str(endpoint.address), endpoint.prefixlen) not in sandbox.addresses(index):
            raise Unavailable(
                f"{problem}: it lost its address {endpoint.address}/{endpoint.prefixlen}"
            )
        if default_route and sandbox.default_route_link() != index:
            raise Unavailable(f"{problem}: the default route via {endpoint.gateway} is gone")

    def cni_gc(
        self, network_ref: str, valid: set[tuple[str, str]], cni_network: str = ""
    ) -> list[str]:
        """Detach every runtime interface on the network not in ``valid`` (CNI GC).

        ``valid`` holds (runtime container id, interface name) pairs, the attachments the
        runtime still has for CNI network ``cni_network`` (the configuration's name): those
        made for another CNI network on the same nsnet network are not its to collect. The
        detached ones are returned as ``id/ifname``. Runtime records left with no interface
        at all (``network disconnect``) go too.
        """
        network = self.get_network(network_ref)
        removed = []
        for container, endpoint in self.network_endpoints(network.id):
            attachment = (container.cni_id, endpoint.container_ifname)
            ours = not cni_network or endpoint.cni_network in ("", cni_network)
            if container.cni_id and ours and attachment not in valid:
                self.cni_del(*attachment, network.id)
                removed.append(f"{container.cni_id}/{endpoint.container_ifname}")
                log.info("network %s: collected CNI attachment %s", network.name, removed[-1])
        for container in self.store.containers():
            if container.cni_id and not self.store.endpoints(container_id=container.id):
                self.remove_container(container.id, force=True)
        return removed

    def cni_result(self, container: Container, endpoint: Endpoint) -> dict:
        """What an ADD made, as the CNI spec's result (version 1.1.0) shapes it."""
        network = self.store.network(endpoint.network_id)
        interfaces = []
        for ifname in (network.bridge_name, endpoint.host_ifname):
            index = self.host.link_index(ifname)
            mac = self.host.link(index)["mac_address"] if index is not None else ""
            interfaces.append({"name": ifname, "mac": mac})
        interfaces.append(
            {
                "name": endpoint.container_ifname,
                "mac": endpoint.mac_address,
                "sandbox": container.netns_path,
            }
        )
        address = {"address": f"{endpoint.address}/{endpoint.prefixlen}", "interface": 2}
        routes = []
        if endpoint.gateway is not None:
            address["gateway"] = str(endpoint.gateway)
            sandbox = self._sandbox_netlink(container.netns_path)
            if sandbox.default_route_link() == sandbox.link_index(endpoint.container_ifname):
                routes.append({"dst": "0.0.0.0/0", "gw": str(endpoint.gateway)})
        return {
            "cniVersion": "1.1.0",
            "interfaces": interfaces,
            "ips": [address],
            "routes": routes,
            "dns": self.dns.resolver_settings(container, self.container_endpoints(container.id)),
        }

    def _forget_cni_container(self, container: Container, why: str, firewall: bool = True) -> None:
        """Drop the records of a runtime container whose namespace went without a DEL.

        Its interfaces went with the namespace, or go now: the sockets nsnet held in it are
        closed and the host ends deleted. Its published ports are withdrawn unless not
        ``firewall`` (reconcile renders the ruleset afterwards).
        """
        log.warning(
            "CNI container %s (%s): %s; forgetting its attachments",
            container.cni_id,
            container.name,
            why,
        )
        endpoints = self.container_endpoints(container.id)
        bindings = self._live_bindings_of(container) if firewall else []
        with self.store.transaction():
            for network, endpoint in endpoints:
                self._forget_endpoint(network, endpoint)
            self.store.delete_container(container.id)
            self.firewall.remove_bindings(bindings)
        self.dns.forget(container)
        self._forget_sandbox_netlink(container.netns_path)
        for _, endpoint in endpoints:
            self._delete_own_link(endpoint.host_ifname, endpoint.id)
        with contextlib.suppress(OSError):
            self._remove_container_files(container.id)

    def _forget_cni_endpoint(
        self, container: Container, network: Network, endpoint: Endpoint
    ) -> None:
        """Drop the record of a runtime interface that is gone (reconcile found it missing),
        and the container's record with its last one."""
        log.warning(
            "CNI container %s (%s): interface %s is gone; forgetting it",
            container.cni_id,
            container.name,
            endpoint.container_ifname,
        )
        with self.store.transaction():
            self._forget_endpoint(network, endpoint)
            if not self.store.endpoints(container_id=container.id):
                self.store.delete_container(container.id)
        self._delete_own_link(endpoint.host_ifname, endpoint.id)

    def _forget_vanished_cni_containers(self) -> None:
        """Every ``CNI_NAMESPACE_CHECK`` seconds: forget runtime containers whose namespace
        went without a DEL. nsnet's sockets in it (netlink, the DNS listener) would keep it,
        its address and its published ports alive otherwise."""
        now = time.monotonic()
        if not self._cni_present or now < self._next_cni_check:
            return
        self._next_cni_check = now + CNI_NAMESPACE_CHECK
        runtime_ids = [row[2] for row in self.store.container_namespaces() if row[2]]
        self._cni_present = bool(runtime_ids)
        for runtime_id in runtime_ids:
            container = self.store.container(cni_container_id(runtime_id))
            if container is not None and self._cni_namespace_gone(container):
                try:
                    self._forget_cni_container(container, "its namespace went without a DEL")
                except NsnetError as error:
                    log.warning("CNI container %s: cannot forget it yet: %s", runtime_id, error)

    # Overlay networks across hosts (the cluster store, the gateway bridge)

    def _open_cluster(self) -> None:
        """Join the cluster store and start following it (with a cluster store configured)."""
        if self.cluster_config is None:
            return
        from nsnet.cluster.agent import ClusterAgent
        from nsnet.cluster.store import ClusterStore

        self.cluster = ClusterStore(self.cluster_config, self.paths.state_dir / "cluster-lease")
        self.cluster.open()  # also while the store is unreachable: it joins when it answers
        self.cluster_agent = ClusterAgent(
            self.cluster, self.drivers["overlay"], self.dns.server.index
        )
        self.cluster_agent.start()
        self._sync_overlay_networks()

    def _close_cluster(self) -> None:
        if self.cluster_agent is not None:
            self.cluster_agent.stop()
            self.cluster_agent = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
        if "overlay" in self.drivers:
            self.drivers["overlay"].close()

    def _cluster_tick(self) -> None:
        """Apply what the cluster's threads noticed: new networks, a lease lost and renewed."""
        if self.cluster is None or not self.cluster.reachable:
            return  # a request now would hold the engine's thread for a whole timeout
        if self.cluster_agent.networks_changed.is_set():
            self.cluster_agent.networks_changed.clear()
            self._sync_overlay_networks()
        if self.cluster.lease_renewed.is_set():
            self.cluster.lease_renewed.clear()
            self._register_overlay_endpoints()
        if self._pending_releases:
            pending, self._pending_releases = self._pending_releases, []
            for network_id, endpoint_id, address in pending:
                self._release_overlay_endpoint(network_id, endpoint_id, address)

    def _sync_overlay_networks(self) -> bool:
        """Copy the cluster's overlay networks into the local store; True if anything changed.

        A network removed from the cluster goes from the local store too; this host's
        containers still on it (it was removed while the host was away) are disconnected
        from it first, with an error in the log.
        """
        if self.cluster is None or not self.cluster.reachable:
            return False
        try:
            remote = {network.id: network for network in self.cluster.networks()}
        except Unavailable as error:
            log.warning("cannot read the cluster's networks: %s", error)
            return False
        local = {network.id: network for network in self.store.networks()}
        changed = False
        for network_id, network in remote.items():
            if network_id in local:
                continue
            clash = next((other for other in local.values() if other.name == network.name), None)
            if clash is not None:
                log.warning(
                    "overlay network %s (%s) is hidden here by the local network of the same name",
                    network.name,
                    network_id[:12],
                )
                continue
            with self.store.transaction():
                self.store.put_network(network)
            changed = True
            log.info("network %s: learned from the cluster (%s)", network.name, network_id[:12])
        for network_id, network in local.items():
            if network.scope != "global" or network_id in remote:
                continue
            # Removed by another host while this one was away (after its lease ran out): its
            # containers here must not hold on to it (nor its VNI, which may be taken again).
            for container, _ in self.network_endpoints(network_id):
                log.error(
                    "container %s: disconnected from overlay network %s: the network was removed "
                    "from the cluster while this host was away",
                    container.name,
                    network.name,
                )
                try:
                    self.disconnect(network_id, container.id, force=True)
                except NsnetError as error:
                    log.error("container %s: cannot disconnect: %s", container.name, error)
            if self.store.endpoint_count(network_id):
                continue  # the next sync tries again
            with self.store.transaction():
                self.store.delete_network(network_id)
                self.drivers["overlay"].delete(network)
            changed = True
            log.info("network %s: removed from the cluster", network.name)
        return changed

    def _create_overlay_network(self, request: NetworkCreate) -> Network:
        """A global-scope network, recorded in the cluster store and copied locally."""
        from nsnet.cluster.store import OPT_VXLANID_LIST, parse_vni

        name = request.name
        check_network_request(request)
        self.drivers["overlay"].validate(request)
        if any(network.name == name for network in self.store.networks()):
            raise Conflict(f"network with name {name} already exists")

        requested = None
        if request.ipam and request.ipam[0].subnet is not None:
            requested = request.ipam[0]
        elif request.ipam and (
            request.ipam[0].gateway or request.ipam[0].ip_range or request.ipam[0].aux_addresses
        ):
            raise InvalidArgument(
                f"cannot create network '{name}': a gateway, ip-range or auxiliary address "
                "needs a subnet"
            )
        vni = None
        if OPT_VXLANID_LIST in request.options:
            vni = parse_vni(request.options[OPT_VXLANID_LIST], name)
        network = Network(
            id=new_id(),
            name=name,
            driver="overlay",
            created=now(),
            scope="global",
            internal=request.internal,
            attachable=request.attachable,
            ipam_options=dict(request.ipam_options),
            options=dict(request.options),
            labels=dict(request.labels),
        )
        local_subnets = [config.subnet for other in self.store.networks() for config in other.ipam]
        local_subnets += [route for route in self._host_routes() if ipam.blocks_allocation(route)]
        network = self.cluster.create_network(network, requested, vni, local_subnets)
        with self.store.transaction():
            self.store.put_network(network)
        log.info("network %s created (overlay, %s)", name, network.id[:12])
        return network

    def _prepare_network(self, network: Network) -> None:
        """Before a join's transaction: an overlay needs the cluster and the gateway bridge."""
        if network.driver != "overlay":
            return
        if self.cluster is None:
            raise Unavailable(f"cannot connect to network '{network.name}': {MISSING_STORE}")
        if not network.internal:  # an internal overlay has no way out, as in Docker
            self._ensure_gateway_bridge()

    def _ensure_gateway_bridge(self) -> Network:
        """The local bridge network that overlay containers route to the outside through."""
        for network in self.store.networks():
            if network.name == GATEWAY_BRIDGE_NETWORK:
                return network
        return self._create_network_record(
            NetworkCreate(
                name=GATEWAY_BRIDGE_NETWORK,
                options={
                    OPT_BRIDGE_NAME: GATEWAY_BRIDGE_NETWORK,
                    OPT_ENABLE_ICC: "false",
                    OPT_ENABLE_IP_MASQUERADE: "true",
                },
            ),
            builtin=False,
        )

    def _gateway_bridge_endpoint(
        self, container: Container
    ) -> tuple[Endpoint | None, Network | None]:
        for network, endpoint in self.container_endpoints(container.id):
            if network.name == GATEWAY_BRIDGE_NETWORK:
                return endpoint, network
        return None, None

    def _leave_gateway_bridge(self, container: Container) -> None:
        """Unplug the gateway bridge once the container is on no overlay network (that is not
        internal) any more."""
        pairs = self.container_endpoints(container.id)
        if any(network.driver == "overlay" and not network.internal for network, _ in pairs):
            return
        for network, _ in pairs:
            if network.name == GATEWAY_BRIDGE_NETWORK:
                self.disconnect(network.id, container.id)

    def _join_overlay(
        self,
        network: Network,
        container: Container,
        ip_address: str | None,
        mac_address: str | None,
        aliases: list[str] | None,
        mine: list[Endpoint],
    ) -> Endpoint:
        """Claim an address in the cluster, plug and register the endpoint, add the gateway.

        The caller owns the store transaction; the cluster's claims are undone here when a
        later step fails.
        """
        if self.cluster is None:
            raise Unavailable(f"cannot connect to network '{network.name}': {MISSING_STORE}")
        failpoints.hit("connect.allocate")
        requested = ipam.parse_address(ip_address, "IPv4 address") if ip_address else None
        endpoint_id = new_id()
        try:
            address = self.cluster.claim_address(network, endpoint_id, requested)
        except (Conflict, InvalidArgument, Unavailable) as error:
            raise type(error)(
                f"cannot connect container '{container.name}' to network '{network.name}': {error}"
            ) from error

        with contextlib.ExitStack() as undo:
            undo.callback(self._release_overlay_endpoint, network.id, endpoint_id, address)
            used_ifnames = {endpoint.container_ifname for endpoint in mine}
            endpoint = Endpoint(
                id=endpoint_id,
                network_id=network.id,
                container_id=container.id,
                container_ifname=next(
                    f"eth{number}"
                    for number in range(len(mine) + 1)
                    if f"eth{number}" not in used_ifnames
                ),
                host_ifname=self._new_host_ifname(),
                mac_address=(mac_address or mac_from_address(address)).lower(),
                address=address,
                prefixlen=network.ipam[0].subnet.prefixlen,
                gateway=None,  # the default route goes through the gateway bridge
                aliases=list(aliases or []),
                static_address=bool(ip_address),
            )
            self.store.allocate(network.id, address, endpoint.id)
            self.store.put_endpoint(endpoint)

            failpoints.hit("connect.store")
            self.drivers["overlay"].join(network, endpoint, container.netns_path, False)
            undo.callback(self.drivers["overlay"].leave, network, endpoint, container.netns_path)

            failpoints.hit("connect.register")
            try:
                self.cluster.register(self._endpoint_record(network, container, endpoint))
            except NotFound as error:
                raise NotFound(
                    f"cannot connect container '{container.name}' to network "
                    f"'{network.name}': {error}"
                ) from error

            if not network.internal:
                gateway_bridge = self._ensure_gateway_bridge()
                if not any(each.network_id == gateway_bridge.id for each in mine):
                    self._join(gateway_bridge, container, None, None, None)
            undo.pop_all()
        log.info(
            "container %s: connected to overlay network %s as %s (%s)",
            container.name,
            network.name,
            endpoint.container_ifname,
            address,
        )
        return endpoint

    def _endpoint_record(
        self, network: Network, container: Container, endpoint: Endpoint
    ) -> EndpointRecord:
        return EndpointRecord(
            network_id=network.id,
            network_name=network.name,
            endpoint_id=endpoint.id,
            container_id=container.id,
            container_name=container.name,
            address=endpoint.address,
            prefixlen=endpoint.prefixlen,
            mac_address=endpoint.mac_address,
            host_address=self.cluster.host_address,
            host_name=self.cluster.config.node_name,
            aliases=tuple(endpoint.aliases),
            stopped=container.state == "exited",
        )

    def _announce_state(self, container: Container) -> None:
        """After a start or an exit: the container's names, here and on the other hosts."""
        self._update_dns(container)
        if self.cluster is None or not self.cluster.reachable:
            return  # registered again, with its state, when the lease is renewed
        for network, endpoint in self.container_endpoints(container.id):
            if network.driver != "overlay":
                continue
            try:
                self.cluster.register(self._endpoint_record(network, container, endpoint))
            except NsnetError as error:  # the next registration after a reconnect catches up
                log.warning(
                    "container %s: cannot update its registration: %s", container.name, error
                )

    def _undo_join(self, network: Network, container: Container, endpoint: Endpoint) -> None:
        """Undo ``_join`` after a later step of the caller failed (the store rolls back)."""
        if network.driver != "overlay":
            self.host.delete_link(endpoint.host_ifname)
            return
        self._forget_overlay_endpoint(network, endpoint)
        self.drivers["overlay"].leave(network, endpoint, container.netns_path)
        gateway_endpoint, _ = self._gateway_bridge_endpoint(container)
        if gateway_endpoint is not None:
            self.host.delete_link(gateway_endpoint.host_ifname)

    def _forget_overlay_endpoint(self, network: Network, endpoint: Endpoint) -> None:
        """Take the endpoint out of the registry and give its address back to the cluster."""
        self._release_overlay_endpoint(network.id, endpoint.id, endpoint.address)

    def _release_overlay_endpoint(
        self, network_id: str, endpoint_id: str, address: IPv4Address
    ) -> None:
        # An endpoint leaving must not wait for the store: a failed release is retried from
        # the daemon's tick (and the lease ends it anyway if this host goes).
        if self.cluster is None:
            return
        try:
            self.cluster.unregister(network_id, endpoint_id)
            self.cluster.release_address(network_id, address, endpoint_id)
        except Unavailable as error:
            log.warning("cannot release %s in the cluster yet: %s", address, error)
            self._pending_releases.append((network_id, endpoint_id, address))

    def _endpoint_present(
        self, container: Container, network: Network, endpoint: Endpoint
    ) -> bool:
        """Whether an endpoint's interfaces are there (for reconcile)."""
        if network.driver == "overlay":
            sandbox = self._sandbox_netlink(container.netns_path)
            return (
                self.drivers["overlay"].endpoint_present(network, endpoint)
                and sandbox.link_index(endpoint.container_ifname) is not None
            )
        return self.host.link_index(endpoint.host_ifname) is not None

    def _reconcile_overlay(self, networks: dict[str, Network], endpoints: list[Endpoint]) -> None:
        members: dict[str, set[str]] = {}
        for endpoint in endpoints:
            network = networks.get(endpoint.network_id)
            if network is not None and network.driver == "overlay":
                members.setdefault(network.id, set()).add(endpoint.id)
        self.drivers["overlay"].reconcile(networks, members)

    def _register_overlay_endpoints(self) -> None:
        """Register this host's live overlay endpoints and addresses (after a start or a
        lost lease) and drop registrations of this host that no endpoint backs any more.

        An address taken by another host meanwhile is never shared: that container is
        disconnected from the overlay network, with an error in the log.
        """
        if self.cluster is None or not self.cluster.lease:
            return  # not joined yet: the join sets lease_renewed, and the tick comes back here
        try:
            records = self.cluster.endpoints()
            local_ids = {endpoint.id for endpoint in self.store.endpoints()}
            for record in records:
                if record.host_address == self.cluster.host_address and (
                    record.endpoint_id not in local_ids
                ):
                    log.info("cluster: dropping stale registration of %s", record.container_name)
                    self._release_overlay_endpoint(
                        record.network_id, record.endpoint_id, record.address
                    )
            for network in self.store.networks():
                if network.driver != "overlay":
                    continue
                for container, endpoint in self.network_endpoints(network.id):
                    try:
                        self.cluster.reclaim_address(network, endpoint.id, endpoint.address)
                    except Conflict as error:
                        log.error(
                            "container %s: disconnected from overlay network %s: its address "
                            "%s was taken while this host was away from the cluster (%s)",
                            container.name,
                            network.name,
                            endpoint.address,
                            error,
                        )
                        self.disconnect(network.id, container.id)
                        continue
                    try:
                        self.cluster.register(self._endpoint_record(network, container, endpoint))
                    except NotFound as error:
                        # Removed by another host meanwhile; the next sync removes it here.
                        log.warning(
                            "container %s: not registered again: %s", container.name, error
                        )
        except Unavailable as error:
            log.warning("cannot register overlay endpoints yet (will retry): %s", error)
            self.cluster.lease_renewed.set()

    def _cluster_info(self) -> dict | None:
        """The cluster store, this host's address and lease, for `nsnet info`."""
        if self.cluster is None:
            return None
        return {
            "Store": self.cluster.config.store_url,
            "AdvertiseAddress": str(self.cluster.host_address),
            "NodeName": self.cluster.config.node_name,
            "TTL": self.cluster.config.ttl,
            "Lease": f"{self.cluster.lease:x}" if self.cluster.lease else "",
            "Reachable": self.cluster.reachable,
            "RemoteEndpoints": len(self.drivers["overlay"].remote_endpoints()),
        }

    def network_peers(self, network: Network) -> list[dict[str, str]] | None:
        """Docker's ``Peers`` of an overlay network: the hosts with endpoints on it."""
        if network.driver != "overlay":
            return None
        hosts: dict[str, str] = {}
        if self.cluster is not None and self.store.endpoint_count(network.id):
            hosts[str(self.cluster.host_address)] = self.cluster.config.node_name
        for record in self.drivers["overlay"].remote_endpoints(network.id):
            hosts[str(record.host_address)] = record.host_name
        return [{"Name": name, "IP": address} for address, name in sorted(hosts.items())]
