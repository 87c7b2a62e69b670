"""nsnet's firewall with real TCP and UDP traffic between throwaway namespaces (issue 3).

The topology is built by hand here (the engine does it in production): a host namespace with
an uplink to an outside namespace (192.0.2.0/24, the "internet"), five bridge networks, and
containers plugged into them by veth pairs with ``hairpin_mode`` on their bridge ports and
``route_localnet=1`` on the bridges only. The firewall is applied by ``Firewall`` objects that
live in a thread which has entered the host namespace. Every container runs a small server that
answers TCP and UDP on port 80 with its own name and the source address it saw.

The whole module runs twice: with br_netfilter passing bridged frames to the IP hooks (this
machine's default) and without, since nsnet must not depend on it either way.
"""

import ctypes
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

import pytest

from nsnet.firewall import Binding, BridgeNetwork, Firewall, ruleset
from tests.support.netns import Namespace, NamespacePool
from tests.support.topology import HostWithOutside

HOST = "192.0.2.1"
OUTSIDE = "192.0.2.100"
ANY = IPv4Address("0.0.0.0")
LOCALHOST = IPv4Address("127.0.0.1")
SERVER_PORT = 80
OUTSIDE_SERVER_PORT = 9000
TIMEOUT = 1.5  # seconds a client waits for an answer that should not come

# Answers "<name> <peer address>" on TCP and UDP ports given on the command line.
SERVER = r"""
import socket, sys, threading
name, ports = sys.argv[1], [int(port) for port in sys.argv[2:]]
def tcp(listener):
    while True:
        connection, (address, _port) = listener.accept()
        connection.sendall(f"{name} {address}\n".encode())
        connection.close()
def udp(receiver):
    while True:
        _data, (address, port) = receiver.recvfrom(100)
        receiver.sendto(f"{name} {address}\n".encode(), (address, port))
for port in ports:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(64)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("0.0.0.0", port))
    threading.Thread(target=tcp, args=(listener,), daemon=True).start()
    threading.Thread(target=udp, args=(receiver,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# Prints the server's answer, or "no answer".
CLIENT = r"""
import socket, sys
protocol, address, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
source_port = int(sys.argv[5]) if len(sys.argv) > 5 else 0
try:
    if protocol == "tcp":
        connection = socket.create_connection((address, port), timeout=timeout)
        print(connection.recv(100).decode().strip())
    else:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sender.settimeout(timeout)
        sender.bind(("0.0.0.0", source_port))
        sender.sendto(b"hello", (address, port))
        print(sender.recvfrom(100)[0].decode().strip())
except OSError as error:
    print("no answer", type(error).__name__)
"""


# A thread inside a namespace -----------------------------------------------------------------

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000


def _enter_namespace(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(descriptor, CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"setns {path}: {os.strerror(code)}")
    finally:
        os.close(descriptor)


class NamespaceThread:
    """One worker thread that enters a namespace for good; ``call`` runs a function there.

    If entering fails the pool is broken and nothing ever runs in the machine's namespace.
    """

    def __init__(self, namespace: Namespace) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=1, initializer=_enter_namespace, initargs=(str(namespace.path),)
        )

    def call(self, function, *args, **kwargs):
        return self._executor.submit(function, *args, **kwargs).result(timeout=300)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


# The topology ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    name: str
    namespace: Namespace
    address: str
    network: BridgeNetwork


NETWORKS = {
    "a": BridgeNetwork("a", "nsnet0", IPv4Network("172.17.0.0/16"), IPv4Address("172.17.0.1"),
                       internal=False, icc=True, masquerade=True),
    "b": BridgeNetwork("b", "br-0000000000b0", IPv4Network("172.18.0.0/16"),
                       IPv4Address("172.18.0.1"), internal=False, icc=True, masquerade=True),
    "internal": BridgeNetwork("internal", "br-0000000000c0", IPv4Network("172.19.0.0/16"),
                              IPv4Address("172.19.0.1"), internal=True, icc=True,
                              masquerade=True),
    "icc-off": BridgeNetwork("icc-off", "br-0000000000d0", IPv4Network("172.20.0.0/16"),
                             IPv4Address("172.20.0.1"), internal=False, icc=False,
                             masquerade=True),
    "masquerade-off": BridgeNetwork("masquerade-off", "br-0000000000e0",
                                    IPv4Network("172.21.0.0/16"), IPv4Address("172.21.0.1"),
                                    internal=False, icc=True, masquerade=False),
}  # fmt: skip

# name: (network, address)
CONTAINERS = {
    "c1": ("a", "172.17.0.2"),
    "c2": ("a", "172.17.0.3"),
    "c3": ("b", "172.18.0.2"),
    "c4": ("internal", "172.19.0.2"),
    "c5": ("internal", "172.19.0.3"),
    "c6": ("icc-off", "172.20.0.2"),
    "c7": ("icc-off", "172.20.0.3"),
    "c8": ("masquerade-off", "172.21.0.2"),
}


class Topology:
    """The host, the outside, the bridges and the containers, each container serving port 80."""

    def __init__(self, pool: NamespacePool, br_netfilter: bool) -> None:
        self.pool = pool
        self.machine = HostWithOutside(pool)
        self.host = self.machine.host
        self.outside = self.machine.outside
        self.containers: dict[str, Container] = {}

        self.host.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.host.run("sysctl", "-qw", f"net.bridge.bridge-nf-call-iptables={int(br_netfilter)}")
        # The outside routes the container subnets to the host only so that the tests can
        # show what the firewall drops and what masquerade-off leaks; the internet would not.
        self.outside.run("ip", "route", "add", "172.16.0.0/12", "via", HOST)

        for network in NETWORKS.values():
            self._add_bridge(network)
        for index, (name, (network_name, address)) in enumerate(CONTAINERS.items()):
            self._add_container(name, NETWORKS[network_name], address, index)

        self._serve(self.outside, "outside", OUTSIDE_SERVER_PORT)
        for container in self.containers.values():
            self._serve(container.namespace, container.name, SERVER_PORT)

    def _add_bridge(self, network: BridgeNetwork) -> None:
        bridge = network.bridge
        self.host.run("ip", "link", "add", bridge, "type", "bridge")
        prefix = network.subnet.prefixlen
        self.host.run("ip", "addr", "add", f"{network.gateway}/{prefix}", "dev", bridge)
        self.host.run("ip", "link", "set", bridge, "up")
        # Localhost access to published ports; on nsnet's bridges only (CVE-2020-8558).
        self.host.run("sysctl", "-qw", f"net.ipv4.conf.{bridge}.route_localnet=1")

    def _add_container(self, name: str, network: BridgeNetwork, address: str, index: int) -> None:
        namespace = self.pool.create(name)
        host_ifname = f"veth{index:07x}"
        self.host.run(
            "ip", "link", "add", host_ifname, "type", "veth",
            "peer", "name", "eth0", "netns", namespace.name,
        )  # fmt: skip
        self.host.run("ip", "link", "set", host_ifname, "master", network.bridge)
        # Hairpin: a container reaching itself through a host address comes back its port.
        self.host.run("ip", "link", "set", host_ifname, "type", "bridge_slave", "hairpin", "on")
        self.host.run("ip", "link", "set", host_ifname, "up")

        prefix = network.subnet.prefixlen
        namespace.run("ip", "addr", "add", f"{address}/{prefix}", "dev", "eth0")
        namespace.run("ip", "link", "set", "eth0", "up")
        # Internal containers get a default route too, so that only the firewall stops them.
        namespace.run("ip", "route", "add", "default", "via", str(network.gateway))
        self.containers[name] = Container(name, namespace, address, network)

    def _serve(self, namespace: Namespace, name: str, port: int) -> None:
        server = namespace.popen(
            sys.executable, "-c", SERVER, name, str(port),
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.stdout.readline().strip() == "ready", f"server {name} did not start"

    def namespace(self, vantage: str) -> Namespace:
        if vantage == "host":
            return self.host
        if vantage == "outside":
            return self.outside
        return self.containers[vantage].namespace


def ask(
    namespace: Namespace,
    protocol: str,
    address: str,
    port: int,
    source_port: int = 0,
    timeout: float = TIMEOUT,
) -> str:
    """The answer of the server at address:port as seen from ``namespace``, or "no answer"."""
    completed = namespace.run(
        sys.executable, "-c", CLIENT, protocol, address, str(port), str(timeout),
        str(source_port), timeout=30,
    )  # fmt: skip
    answer = completed.stdout.strip()
    return "no answer" if answer.startswith("no answer") else answer


def published(host_ip: IPv4Address, host_port: int, protocol: str, container: str) -> Binding:
    network_name, address = CONTAINERS[container]
    return Binding(host_ip, host_port, protocol, IPv4Address(address), SERVER_PORT,
                   NETWORKS[network_name].bridge)  # fmt: skip


BINDINGS = [
    published(ANY, 8080, "tcp", "c1"),
    published(ANY, 8080, "udp", "c1"),
    published(LOCALHOST, 8081, "tcp", "c1"),
    published(LOCALHOST, 8081, "udp", "c1"),
    published(ANY, 8082, "tcp", "c3"),
    published(ANY, 8083, "tcp", "c6"),
    published(ANY, 8084, "tcp", "c4"),
    published(IPv4Address(HOST), 8085, "tcp", "c2"),
    published(ANY, 3868, "sctp", "c1"),  # rendered and applied; this kernel carries no SCTP
]


@pytest.fixture(scope="module", params=[True, False], ids=["br_netfilter", "no-br_netfilter"])
def topology(request: pytest.FixtureRequest) -> Iterator[Topology]:
    with NamespacePool() as pool:
        yield Topology(pool, br_netfilter=request.param)


@pytest.fixture(scope="module")
def host_thread(topology: Topology) -> Iterator[NamespaceThread]:
    thread = NamespaceThread(topology.host)
    try:
        yield thread
    finally:
        thread.close()


@pytest.fixture
def firewall(topology: Topology, host_thread: NamespaceThread) -> Iterator[Firewall]:
    """The host's firewall, synced to the standard networks and bindings before each test."""
    instance = host_thread.call(Firewall)
    host_thread.call(instance.sync, NETWORKS.values(), BINDINGS)
    yield instance
    instance.close()  # its conntrack socket would keep the namespace alive


# Point 3: every path to a published port ------------------------------------------------------

PATHS = [
    # (from, protocol, address, port, expected answer)
    ("outside", "tcp", HOST, 8080, "c1 192.0.2.100"),  # the client's real address
    ("outside", "udp", HOST, 8080, "c1 192.0.2.100"),
    ("host", "tcp", "127.0.0.1", 8080, "c1 172.17.0.1"),  # no userland proxy
    ("host", "udp", "127.0.0.1", 8080, "c1 172.17.0.1"),
    ("host", "tcp", HOST, 8080, "c1 192.0.2.1"),
    ("host", "udp", HOST, 8080, "c1 192.0.2.1"),
    ("host", "tcp", "172.17.0.1", 8080, "c1 172.17.0.1"),  # the gateway is a host address too
    ("host", "tcp", "127.0.0.1", 8081, "c1 172.17.0.1"),  # bound to 127.0.0.1 only
    ("host", "udp", "127.0.0.1", 8081, "c1 172.17.0.1"),
    ("c2", "tcp", HOST, 8080, "c1 172.17.0.1"),  # hairpin from a neighbour
    ("c2", "udp", HOST, 8080, "c1 172.17.0.1"),
    ("c1", "tcp", HOST, 8080, "c1 172.17.0.1"),  # hairpin to itself
    ("c1", "udp", HOST, 8080, "c1 172.17.0.1"),
    ("c3", "tcp", HOST, 8080, "c1 172.17.0.1"),  # from another network, through the host
    ("outside", "tcp", HOST, 8085, "c2 192.0.2.100"),  # bound to one host address
    ("outside", "tcp", HOST, 8081, "no answer"),  # 127.0.0.1 bindings stay local
    ("outside", "udp", HOST, 8081, "no answer"),
    ("host", "tcp", "127.0.0.1", 8085, "no answer"),  # bound to 192.0.2.1 only
    ("outside", "tcp", HOST, 8099, "no answer"),  # not published
]


@pytest.mark.parametrize(
    ("vantage", "protocol", "address", "port", "expected"),
    PATHS,
    ids=[f"{v}-{p}-{a}:{port}" for v, p, a, port, _ in PATHS],
)
def test_published_port_path(
    topology: Topology,
    firewall: Firewall,
    vantage: str,
    protocol: str,
    address: str,
    port: int,
    expected: str,
) -> None:
    assert ask(topology.namespace(vantage), protocol, address, port) == expected


# Point 2 and 5: masquerade and isolation ------------------------------------------------------

ISOLATION = [
    # Outbound: masqueraded, unless masquerade is off; never from an internal network.
    ("c1", "tcp", OUTSIDE, OUTSIDE_SERVER_PORT, "outside 192.0.2.1"),
    ("c1", "udp", OUTSIDE, OUTSIDE_SERVER_PORT, "outside 192.0.2.1"),
    ("c8", "tcp", OUTSIDE, OUTSIDE_SERVER_PORT, "outside 172.21.0.2"),
    ("c4", "tcp", OUTSIDE, OUTSIDE_SERVER_PORT, "no answer"),
    ("c4", "udp", OUTSIDE, OUTSIDE_SERVER_PORT, "no answer"),
    # The outside reaches containers only through published ports.
    ("outside", "tcp", "172.17.0.2", SERVER_PORT, "no answer"),
    ("outside", "udp", "172.17.0.2", SERVER_PORT, "no answer"),
    ("outside", "tcp", "172.21.0.2", SERVER_PORT, "no answer"),
    # Two networks: no direct traffic in either direction; published ports still work.
    ("c1", "tcp", "172.18.0.2", SERVER_PORT, "no answer"),
    ("c3", "tcp", "172.17.0.2", SERVER_PORT, "no answer"),
    ("c3", "udp", "172.17.0.2", SERVER_PORT, "no answer"),
    ("c1", "tcp", HOST, 8082, "c3 172.18.0.1"),
    # Within one network with icc on.
    ("c1", "tcp", "172.17.0.3", SERVER_PORT, "c2 172.17.0.2"),
    ("c1", "udp", "172.17.0.3", SERVER_PORT, "c2 172.17.0.2"),
    # The host reaches every container by its address, internal ones included.
    ("host", "tcp", "172.17.0.2", SERVER_PORT, "c1 172.17.0.1"),
    ("host", "tcp", "172.19.0.2", SERVER_PORT, "c4 172.19.0.1"),
    # Internal: its containers talk to each other and nothing else, published or not.
    ("c4", "tcp", "172.19.0.3", SERVER_PORT, "c5 172.19.0.2"),
    ("c4", "tcp", "172.17.0.2", SERVER_PORT, "no answer"),
    ("c1", "tcp", "172.19.0.2", SERVER_PORT, "no answer"),
    ("outside", "tcp", HOST, 8084, "no answer"),
    ("c1", "tcp", HOST, 8084, "no answer"),
    # icc off: no traffic between its containers, but the outside and published ports work.
    ("c6", "tcp", "172.20.0.3", SERVER_PORT, "no answer"),
    ("c6", "udp", "172.20.0.3", SERVER_PORT, "no answer"),
    ("c7", "tcp", "172.20.0.2", SERVER_PORT, "no answer"),
    ("c6", "tcp", OUTSIDE, OUTSIDE_SERVER_PORT, "outside 192.0.2.1"),
    ("c6", "tcp", HOST, 8080, "c1 172.17.0.1"),
    ("c7", "tcp", HOST, 8083, "c6 172.20.0.1"),  # its neighbour's published port
    ("outside", "tcp", HOST, 8083, "c6 192.0.2.100"),
    ("host", "tcp", "172.20.0.2", SERVER_PORT, "c6 172.20.0.1"),
]


@pytest.mark.parametrize(
    ("vantage", "protocol", "address", "port", "expected"),
    ISOLATION,
    ids=[f"{v}-{p}-{a}:{port}" for v, p, a, port, _ in ISOLATION],
)
def test_isolation(
    topology: Topology,
    firewall: Firewall,
    vantage: str,
    protocol: str,
    address: str,
    port: int,
    expected: str,
) -> None:
    assert ask(topology.namespace(vantage), protocol, address, port) == expected


# A forged packet to 127.0.0.1 on the uplink (moby#41872) ---------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn_frame(
    source_mac: bytes, destination_mac: bytes, source: str, destination: str, port: int
) -> bytes:
    """An Ethernet frame carrying a TCP SYN from source:40000 to destination:port."""
    source_ip, destination_ip = socket.inet_aton(source), socket.inet_aton(destination)
    tcp = struct.pack("!HHIIBBHHH", 40000, port, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = source_ip + destination_ip + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, socket.IPPROTO_TCP, 0,
        source_ip, destination_ip,
    )  # fmt: skip
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return destination_mac + source_mac + b"\x08\x00" + header + tcp


# Sends one forged SYN on eth0 and prints "answered" if a SYN-ACK to port 40000 comes back.
FORGER = r"""
import socket, sys, time
frame, wait = bytes.fromhex(sys.argv[1]), float(sys.argv[2])
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
raw.bind(("eth0", 0))
raw.settimeout(0.2)
raw.send(frame)
deadline = time.monotonic() + wait
while time.monotonic() < deadline:
    try:
        packet = raw.recv(2048)
    except TimeoutError:
        continue
    ip = packet[14:]
    if ip[9] == socket.IPPROTO_TCP:
        tcp = ip[(ip[0] & 15) * 4:]
        if int.from_bytes(tcp[2:4], "big") == 40000 and tcp[13] & 0x12 == 0x12:
            print("answered", flush=True)
            sys.exit(0)
print("silent")
"""


def _mac(namespace: Namespace) -> bytes:
    line = namespace.run("ip", "-o", "link", "show", "eth0").stdout
    return bytes.fromhex(line.split("link/ether ")[1].split()[0].replace(":", ""))


@pytest.mark.parametrize(
    ("destination", "port", "expected"),
    [("127.0.0.1", 8081, "silent"), ("127.0.0.1", 8080, "silent"), (HOST, 8080, "answered")],
    ids=["localhost-binding", "wildcard-binding", "control-host-address"],
)
def test_forged_loopback_packet_on_uplink_gets_no_answer(
    topology: Topology, firewall: Firewall, destination: str, port: int, expected: str
) -> None:
    frame = syn_frame(_mac(topology.outside), _mac(topology.host), OUTSIDE, destination, port)
    completed = topology.outside.run(sys.executable, "-c", FORGER, frame.hex(), "2")
    assert completed.stdout.strip() == expected


# UDP flows follow a binding at once (moby#8795) -------------------------------------------------


def test_udp_binding_changes_flush_conntrack(
    topology: Topology, host_thread: NamespaceThread, firewall: Firewall
) -> None:
    outside = topology.outside
    source_port = 40400

    # A sender that talks to the port before it is published leaves a conntrack entry
    # that ties its flow to the host itself.
    assert ask(outside, "udp", HOST, 5400, source_port) == "no answer"

    to_c1 = published(ANY, 5400, "udp", "c1")
    host_thread.call(firewall.add_bindings, [to_c1])
    assert ask(outside, "udp", HOST, 5400, source_port) == "c1 192.0.2.100"

    to_c2 = published(ANY, 5400, "udp", "c2")
    host_thread.call(firewall.remove_bindings, [to_c1])
    host_thread.call(firewall.add_bindings, [to_c2])
    assert ask(outside, "udp", HOST, 5400, source_port) == "c2 192.0.2.100"


def test_without_the_flush_an_old_udp_flow_misses_the_new_binding(
    topology: Topology, host_thread: NamespaceThread, firewall: Firewall
) -> None:
    """The control for the test above: the elements alone do not redirect a live flow."""
    outside = topology.outside
    source_port = 40401
    assert ask(outside, "udp", HOST, 5401, source_port) == "no answer"

    binding = published(ANY, 5401, "udp", "c1")
    host_thread.call(firewall._apply, "add bindings", ruleset.add_bindings([binding]))
    assert ask(outside, "udp", HOST, 5401, source_port) == "no answer"

    host_thread.call(firewall.flush_conntrack, [binding])
    assert ask(outside, "udp", HOST, 5401, source_port) == "c1 192.0.2.100"


def conntrack_flows(topology: Topology, address: str, but: str = "") -> set[tuple[str, ...]]:
    """The host's conntrack entries that name ``address`` (and not ``but``), by their tuples.

    Only the tuples' fields: the timeout and the state change while the entry lives.
    """
    listing = topology.host.run("conntrack", "-L", check=False).stdout
    flows = set()
    for line in listing.splitlines():
        padded = f"{line} "
        if f"={address} " in padded and not (but and f"={but} " in padded):
            fields = [token for token in line.split() if token.split("=")[0] in TUPLE_FIELDS]
            flows.add(tuple(fields))
    return flows


TUPLE_FIELDS = ("src", "dst", "sport", "dport")


@pytest.mark.parametrize("filtered", [True, False], ids=["kernel filter", "dump fallback"])
def test_container_conntrack_is_flushed(
    topology: Topology,
    host_thread: NamespaceThread,
    firewall: Firewall,
    monkeypatch: pytest.MonkeyPatch,
    filtered: bool,
) -> None:
    """Inbound (DNATed: the container is the reply's source) and outbound flows both go, and
    another container's stay; also on a kernel without filtered deletes (the fallback)."""
    if not filtered:
        monkeypatch.setattr(firewall, "_filtered_delete", False)
    assert ask(topology.outside, "udp", HOST, 8080, 40402) == "c1 192.0.2.100"
    assert ask(topology.outside, "tcp", HOST, 8085) == "c2 192.0.2.100"
    topology.containers["c1"].namespace.run("ping", "-c", "1", "-W", "1", OUTSIDE, check=False)
    assert len(conntrack_flows(topology, "172.17.0.2")) >= 2
    others = conntrack_flows(topology, "172.17.0.3", but="172.17.0.2")
    assert others

    host_thread.call(firewall.flush_container_conntrack, IPv4Address("172.17.0.2"))

    assert conntrack_flows(topology, "172.17.0.2") == set()
    assert conntrack_flows(topology, "172.17.0.3", but="172.17.0.2") >= others
    host_thread.call(firewall.flush_container_conntrack, IPv4Address("172.17.0.2"))  # no error


# Repair, cost per port ------------------------------------------------------------------------


def test_sync_repairs_a_deleted_table(
    topology: Topology, host_thread: NamespaceThread, firewall: Firewall
) -> None:
    topology.host.run("nft", "delete", "table", "inet", "nsnet")
    assert ask(topology.outside, "tcp", HOST, 8080) == "no answer"

    host_thread.call(firewall.sync, NETWORKS.values(), BINDINGS)
    assert ask(topology.outside, "tcp", HOST, 8080) == "c1 192.0.2.100"


def test_thousand_bindings_one_by_one_keep_the_rule_count(
    topology: Topology, host_thread: NamespaceThread, firewall: Firewall
) -> None:
    host_thread.call(firewall.sync, NETWORKS.values(), [])
    bindings = [published(ANY, port, "tcp", "c1") for port in range(20000, 21000)]

    host_thread.call(firewall.add_bindings, bindings[:1])
    rules_with_one = host_thread.call(firewall.state).rules

    timings = []
    for binding in bindings[1:]:
        started = time.perf_counter()
        host_thread.call(firewall.add_bindings, [binding])
        timings.append(time.perf_counter() - started)

    state = host_thread.call(firewall.state)
    assert state.rules == rules_with_one
    assert state.elements["inet nsnet wildcard_addresses"] == 1000
    assert state.elements["inet nsnet wildcard_ports"] == 1000
    assert ask(topology.outside, "tcp", HOST, 20999) == "c1 192.0.2.100"

    milliseconds = [timing * 1000 for timing in timings]
    print(
        f"\n1,000 bindings added one by one: rules {state.rules} throughout; per change "
        f"2nd {milliseconds[0]:.2f} ms, median {sorted(milliseconds)[len(milliseconds) // 2]:.2f}"
        f" ms, max {max(milliseconds):.2f} ms, 1000th {milliseconds[-1]:.2f} ms"
    )
    for start in range(0, len(milliseconds), 100):
        chunk = milliseconds[start : start + 100]
        print(f"  bindings {start + 2:4d}-{start + len(chunk) + 1:4d}: "
              f"mean {sum(chunk) / len(chunk):.2f} ms")  # fmt: skip

    host_thread.call(firewall.remove_bindings, bindings)
    assert host_thread.call(firewall.state).elements["inet nsnet wildcard_addresses"] == 0
