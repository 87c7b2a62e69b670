"""Published ports through the real nsnetd and CLI: every path of issue 3, point 3.

A container published with ``nsnet run -p`` must answer from the outside namespace through the
host's address (and see the outside's own address), from the host itself through 127.0.0.1 and
the host's address with no proxy process, and from a neighbour and from itself through the
host's address (hairpin). A binding to 127.0.0.1 must stay out of reach of a forged packet
arriving on the uplink (moby#41872), and a UDP sender must follow a binding that moves to a new
container at once (moby#8795). Real TCP and UDP traffic, between the test's namespaces only.
"""

import json
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.daemon import Daemon

HOST = "192.0.2.1"
OUTSIDE = "192.0.2.100"
NO_ANSWER = "no answer"
SILENCE = 1.5  # seconds a client waits for an answer that should not come
FORGED_SOURCE_PORT = 40000
READY_TIMEOUT = 10

# A container's server: answers "<name>:<port> <peer address>" on TCP and UDP for each port, so
# that the client sees which container and which container port it reached, and as whom.
SERVER = r"""
import socket, sys, threading
name, ports = sys.argv[1], [int(port) for port in sys.argv[2:]]
def tcp(listener, port):
    while True:
        connection, (address, _port) = listener.accept()
        connection.sendall(f"{name}:{port} {address}\n".encode())
        connection.close()
def udp(receiver, port):
    while True:
        _data, (address, peer_port) = receiver.recvfrom(100)
        print(f"datagram from {address}:{peer_port}", flush=True)
        receiver.sendto(f"{name}:{port} {address}\n".encode(), (address, peer_port))
for port in ports:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(64)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("0.0.0.0", port))
    threading.Thread(target=tcp, args=(listener, port), daemon=True).start()
    threading.Thread(target=udp, args=(receiver, port), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# One request: prints the server's answer, or "no answer <why>".
CLIENT = r"""
import socket, sys
protocol, address, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
try:
    if protocol == "tcp":
        connection = socket.create_connection((address, port), timeout=timeout)
        connection.settimeout(timeout)
        print(connection.recv(100).decode().strip() or "no answer (closed)")
    else:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.settimeout(timeout)
        sender.sendto(b"hello", (address, port))
        print(sender.recvfrom(100)[0].decode().strip())
except OSError as error:
    print("no answer", type(error).__name__)
"""

# Sends a datagram from one source port every 0.1 s for a while, printing
# "<monotonic time> <answer or none>" for each.
STEADY_SENDER = r"""
import socket, sys, time
address, port, source_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
duration = float(sys.argv[4])
sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sender.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sender.bind(("0.0.0.0", source_port))
sender.settimeout(0.1)
deadline = time.monotonic() + duration
while time.monotonic() < deadline:
    sender.sendto(b"hello", (address, port))
    try:
        answer = sender.recvfrom(100)[0].decode().strip()
    except OSError:
        answer = "none"
    print(f"{time.monotonic():.3f} {answer}", flush=True)
    time.sleep(0.05)
"""


class Traffic:
    """Servers in containers, and one-shot clients at every vantage point of one daemon."""

    def __init__(self, daemon: Daemon, directory: Path) -> None:
        self.daemon = daemon
        self.outside = daemon.topology.outside
        self.server = directory / "server.py"
        self.server.write_text(SERVER)

    def serve(self, name: str, *options: str, ports: tuple[int, ...] = (80,)) -> str:
        """``nsnet run -d`` a server container; wait until it listens; return its address."""
        self.daemon.cli(
            "run", "-d", "--name", name, *options, "--",
            sys.executable, str(self.server), name, *map(str, ports),
        )  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT
        while "ready" not in self.daemon.cli("logs", name).stdout:
            assert time.monotonic() < deadline, f"server {name} never got ready"
            time.sleep(0.05)
        return self.address(name)

    def address(self, name: str, network: str = "bridge") -> str:
        """The container's address on ``network``."""
        details = json.loads(self.daemon.cli("inspect", name).stdout)[0]
        return details["NetworkSettings"]["Networks"][network]["IPAddress"]

    def gateway(self, name: str, network: str = "bridge") -> str:
        """The container's gateway on ``network``: the bridge's own address."""
        details = json.loads(self.daemon.cli("inspect", name).stdout)[0]
        return details["NetworkSettings"]["Networks"][network]["Gateway"]

    def ask(
        self, where: str, protocol: str, address: str, port: int, timeout: float = SILENCE
    ) -> str:
        """One request from "outside", "host" or a container's name; the answer."""
        argv = (sys.executable, "-c", CLIENT, protocol, address, str(port), str(timeout))
        if where == "outside":
            completed = self.outside.run(*argv)
        elif where == "host":
            completed = self.daemon.exec_in_host(*argv)
        else:
            completed = self.daemon.cli("exec", where, "--", *argv)
        return completed.stdout.strip()

    def expect(self, where: str, protocol: str, address: str, port: int, expected: str) -> str:
        """Ask until the answer starts with ``expected`` (a few tries: ARP, a new server)."""
        answer = ""
        for _ in range(5):
            answer = self.ask(where, protocol, address, port)
            if answer.startswith(expected):
                break
        return answer


@pytest.fixture
def traffic(daemon: Daemon, tmp_path: Path) -> Traffic:
    return Traffic(daemon, tmp_path)


def set_br_netfilter(daemon: Daemon, enabled: int) -> None:
    """Whether bridged frames also traverse the IP hooks; nsnet must not depend on it."""
    daemon.exec_in_host("sysctl", "-qw", f"net.bridge.bridge-nf-call-iptables={enabled}")


BR_NETFILTER = pytest.mark.parametrize(
    "br_netfilter", [1, 0], ids=["br_netfilter", "no_br_netfilter"]
)


def check_paths(traffic: Traffic, cases: list[tuple[str, str, str, int, str]]) -> None:
    """Ask each (where, protocol, address, port, expected) and fail naming every mismatch."""
    wrong = []
    for where, protocol, address, port, expected in cases:
        if expected == NO_ANSWER:
            answer = traffic.ask(where, protocol, address, port)
            ok = answer.startswith(NO_ANSWER)
        else:
            answer = traffic.expect(where, protocol, address, port, expected)
            ok = answer == expected
        if not ok:
            wrong.append(f"{where} -> {address}:{port}/{protocol}: {answer!r}, not {expected!r}")
    assert not wrong, "\n".join(wrong)


@BR_NETFILTER
def test_published_port_answers_on_every_path(
    traffic: Traffic, daemon: Daemon, br_netfilter: int
) -> None:
    set_br_netfilter(daemon, br_netfilter)
    web = traffic.serve(
        "web",
        "-p", "8080:80", "-p", "8080:80/udp", "-p", "127.0.0.1:8081:80",
        "-p", "192.0.2.1:8082:80", "-p", "192.0.2.1:8082:80/udp",
    )  # fmt: skip
    peer = traffic.serve("peer")
    gateway = traffic.gateway("web")

    check_paths(
        traffic,
        [
            # From the outside through the host's address: the container sees the client.
            ("outside", "tcp", HOST, 8080, f"web:80 {OUTSIDE}"),
            ("outside", "udp", HOST, 8080, f"web:80 {OUTSIDE}"),
            ("outside", "tcp", HOST, 8082, f"web:80 {OUTSIDE}"),
            ("outside", "udp", HOST, 8082, f"web:80 {OUTSIDE}"),
            # A binding to 127.0.0.1 is the host's alone.
            ("outside", "tcp", HOST, 8081, NO_ANSWER),
            # From the host through 127.0.0.1 (masqueraded: a container cannot answer
            # 127.0.0.1) and through its own address (kept).
            ("host", "tcp", "127.0.0.1", 8080, f"web:80 {gateway}"),
            ("host", "udp", "127.0.0.1", 8080, f"web:80 {gateway}"),
            ("host", "tcp", "127.0.0.1", 8081, f"web:80 {gateway}"),
            ("host", "tcp", HOST, 8080, f"web:80 {HOST}"),
            ("host", "udp", HOST, 8080, f"web:80 {HOST}"),
            ("host", "tcp", HOST, 8082, f"web:80 {HOST}"),
            # A binding to one address is not published on another.
            ("host", "tcp", "127.0.0.1", 8082, NO_ANSWER),
            ("host", "tcp", HOST, 8081, NO_ANSWER),
            # Hairpin: a neighbour and the container itself through the host's address.
            ("peer", "tcp", HOST, 8080, f"web:80 {gateway}"),
            ("peer", "udp", HOST, 8080, f"web:80 {gateway}"),
            ("web", "tcp", HOST, 8080, f"web:80 {gateway}"),
            ("web", "udp", HOST, 8080, f"web:80 {gateway}"),
            ("web", "tcp", HOST, 8082, f"web:80 {gateway}"),
            # And directly, by address, as always.
            ("peer", "tcp", web, 80, f"web:80 {peer}"),
            ("host", "tcp", web, 80, f"web:80 {gateway}"),
        ],
    )


def test_no_proxy_process_holds_a_published_port(traffic: Traffic, daemon: Daemon) -> None:
    traffic.serve(
        "web", "-p", "8080:80", "-p", "8080:80/udp", "-p", "127.0.0.1:8081:80", "-p", "80"
    )
    assert traffic.expect("host", "tcp", "127.0.0.1", 8080, "web:80").startswith("web:80")

    # Nothing in the host namespace listens: the kernel's NAT does all of it.
    listening = daemon.exec_in_host("ss", "-H", "-ltunp").stdout
    assert listening.strip() == "", listening


# A forged packet to 127.0.0.1 on the uplink (moby#41872) ---------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def forged_frame(
    protocol: str,
    source_mac: bytes,
    destination_mac: bytes,
    source: str,
    destination: str,
    port: int,
    source_port: int,
) -> bytes:
    """An Ethernet frame with a TCP SYN or a UDP datagram from source to destination:port."""
    source_ip, destination_ip = socket.inet_aton(source), socket.inet_aton(destination)
    if protocol == "tcp":
        number = socket.IPPROTO_TCP
        segment = struct.pack("!HHIIBBHHH", source_port, port, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
        checksum_at = 16
    else:
        number = socket.IPPROTO_UDP
        segment = struct.pack("!HHHH", source_port, port, 8 + 6, 0) + b"forged"
        checksum_at = 6
    pseudo = source_ip + destination_ip + struct.pack("!BBH", 0, number, len(segment))
    checksum = struct.pack("!H", _checksum(pseudo + segment))
    segment = segment[:checksum_at] + checksum + segment[checksum_at + 2 :]
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 1, 0, 64, number, 0,
        source_ip, destination_ip,
    )  # fmt: skip
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return destination_mac + source_mac + b"\x08\x00" + header + segment


# Sends one forged frame on eth0; prints "answered" if a TCP SYN-ACK or a UDP datagram to its
# source port comes back within the wait, else "silent".
FORGER = r"""
import socket, sys, time
frame, wait, source_port = bytes.fromhex(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
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
    segment = ip[(ip[0] & 15) * 4:]
    if ip[9] not in (socket.IPPROTO_TCP, socket.IPPROTO_UDP):
        continue
    if int.from_bytes(segment[2:4], "big") != source_port:
        continue
    if ip[9] == socket.IPPROTO_UDP or segment[13] & 0x12 == 0x12:
        print("answered", flush=True)
        sys.exit(0)
print("silent")
"""


def _mac(run, ifname: str = "eth0") -> bytes:
    line = run("ip", "-o", "link", "show", ifname).stdout
    return bytes.fromhex(line.split("link/ether ")[1].split()[0].replace(":", ""))


def test_forged_loopback_packet_on_the_uplink_never_reaches_the_container(
    traffic: Traffic, daemon: Daemon
) -> None:
    web = traffic.serve(
        "web", "-p", "127.0.0.1:8081:80", "-p", "127.0.0.1:8081:80/udp",
        "-p", "8080:80", "-p", "8080:80/udp",
    )  # fmt: skip
    assert traffic.expect("host", "tcp", "127.0.0.1", 8081, "web:80").startswith("web:80")
    outside_mac = _mac(traffic.outside.run)
    host_mac = _mac(daemon.exec_in_host)

    # Each from its own source port, so that no flow's conntrack entry affects another.
    results = {}
    for number, (destination, protocol, port) in enumerate(
        (destination, protocol, port)
        for destination in ("127.0.0.1", HOST)
        for protocol, port in (("tcp", 8081), ("udp", 8081), ("tcp", 8080), ("udp", 8080))
    ):
        source_port = FORGED_SOURCE_PORT + number
        frame = forged_frame(
            protocol, outside_mac, host_mac, OUTSIDE, destination, port, source_port
        )
        completed = traffic.outside.run(
            sys.executable, "-c", FORGER, frame.hex(), "1", str(source_port)
        )
        results[f"{destination}:{port}/{protocol}"] = completed.stdout.strip()

    # Which of them reached the container: DNATed TCP flows to its address, datagrams it saw.
    flows = daemon.exec_in_host("conntrack", "-L", "-p", "tcp", "-s", OUTSIDE).stdout
    reached_tcp = {
        f"{line.split('dst=')[1].split()[0]}:{line.split('dport=')[1].split()[0]}"
        for line in flows.splitlines()
        if f"src={web} " in line and int(line.split("sport=")[1].split()[0]) >= FORGED_SOURCE_PORT
    }
    logs = daemon.cli("logs", "web").stdout
    datagrams = [line for line in logs.splitlines() if f"datagram from {OUTSIDE}:" in line]

    # Nothing sent to 127.0.0.1 reached the container; of the host's address (the control),
    # only the wildcard binding did (8081 is bound to 127.0.0.1 alone).
    assert reached_tcp == {f"{HOST}:8080"}, flows
    assert len(datagrams) == 1, datagrams
    # And only the control answered.
    assert results == {
        "127.0.0.1:8081/tcp": "silent",
        "127.0.0.1:8081/udp": "silent",
        "127.0.0.1:8080/tcp": "silent",
        "127.0.0.1:8080/udp": "silent",
        f"{HOST}:8081/tcp": "silent",
        f"{HOST}:8081/udp": "silent",
        f"{HOST}:8080/tcp": "answered",
        f"{HOST}:8080/udp": "answered",
    }


# UDP flows follow a binding at once (moby#8795) -------------------------------------------------


def test_udp_sender_reaches_the_new_container_at_once(traffic: Traffic, daemon: Daemon) -> None:
    traffic.serve("first", "-p", "5000:80/udp")
    sender = traffic.outside.popen(
        sys.executable, "-c", STEADY_SENDER, HOST, "5000", "40400", "30",
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []

    def answers_until(predicate, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = sender.stdout.readline()
            if not line:
                return None
            lines.append(line.strip())
            if predicate(line.split(maxsplit=1)[1].strip()):
                return line
        return None

    try:
        assert answers_until(lambda answer: answer.startswith("first:80"), 10), lines

        # The binding goes; the sender keeps talking to the host port from the same source
        # port, which ties its flow to the host itself (no listener: ICMP unreachable).
        daemon.cli("rm", "-f", "first")
        moved = time.monotonic()
        assert answers_until(lambda answer: time.monotonic() > moved + 1, 5) is not None

        started = time.monotonic()
        traffic.serve("second", "-p", "5000:80/udp")
        ready = time.monotonic()  # the server listens (seen in its log) by now
        reached = answers_until(lambda answer: answer.startswith("second:80"), 10)
    finally:
        sender.kill()
        sender.wait()

    assert reached is not None, "the sender never reached the new container:\n" + "\n".join(
        lines[-20:]
    )
    answered = float(reached.split()[0])
    print(
        f"the new container answered {answered - started:.2f} s after `nsnet run` began; "
        f"its server was seen ready after {ready - started:.2f} s"
    )
    assert answered < ready + 1.0, lines[-20:]
    assert not any("first:80" in line for line in lines[lines.index(reached.strip()) :])
