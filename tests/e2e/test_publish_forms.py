"""``-p`` and ``-P`` through the real nsnetd and CLI: every form, ``nsnet port``, and conflicts.

Each form of ``-p [hostIP:][hostPort:]containerPort[/proto]`` is published and reached with
real traffic from the outside namespace (or the host, for 127.0.0.1); ``nsnet port`` must print
what ``docker port`` prints (the docker CLI itself is asked, against the same daemon). A host
port that a container or a listening socket in the host namespace already holds is refused
naming the holder, and the refusal changes nothing; SCTP is refused naming the missing kernel
support (this machine's kernel has none).
"""

import json
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
READY_TIMEOUT = 10
EXIT_FAILED_TO_RUN = 125

# A container's server: answers "<name>:<port> <peer address>" on TCP and UDP for each port.
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

# Holds a host port the way a service on the host would: a TCP listener or a bound UDP socket.
HOLDER = r"""
import socket, sys, threading
protocol, port = sys.argv[1], int(sys.argv[2])
kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
holder = socket.socket(socket.AF_INET, kind)
holder.bind(("0.0.0.0", port))
if protocol == "tcp":
    holder.listen(1)
print("ready", flush=True)
threading.Event().wait()
"""


class Traffic:
    """Servers in containers, and one-shot clients from the outside or the host."""

    def __init__(self, daemon: Daemon, directory: Path) -> None:
        self.daemon = daemon
        self.outside = daemon.topology.outside
        self.server = directory / "server.py"
        self.server.write_text(SERVER)

    def serve(self, name: str, *options: str, ports: tuple[int, ...] = (80,)) -> None:
        """``nsnet run -d`` a server container and wait until it listens."""
        self.daemon.cli(
            "run", "-d", "--name", name, *options, "--",
            sys.executable, str(self.server), name, *map(str, ports),
        )  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT
        while "ready" not in self.daemon.cli("logs", name).stdout:
            assert time.monotonic() < deadline, f"server {name} never got ready"
            time.sleep(0.05)

    def ask(self, where: str, protocol: str, address: str, port: int) -> str:
        """One request from "outside" or "host"; the answer."""
        argv = (sys.executable, "-c", CLIENT, protocol, address, str(port), str(SILENCE))
        if where == "outside":
            return self.outside.run(*argv).stdout.strip()
        return self.daemon.exec_in_host(*argv).stdout.strip()

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


def port_lines(daemon: Daemon, name: str, *private_port: str) -> list[str]:
    return daemon.cli("port", name, *private_port).stdout.splitlines()


def host_port_of(lines: list[str], private: str, host_ip: str = "0.0.0.0") -> list[int]:
    """The host ports that ``nsnet port`` lines show for ``private`` on ``host_ip``."""
    ports = []
    for line in lines:
        key, _, host = line.partition(" -> ")
        address, _, port = host.rpartition(":")
        if key == private and address == host_ip:
            ports.append(int(port))
    return ports


def local_port_range(daemon: Daemon) -> range:
    first, last = daemon.exec_in_host(
        "cat", "/proc/sys/net/ipv4/ip_local_port_range"
    ).stdout.split()
    return range(int(first), int(last) + 1)


def check_reached(traffic: Traffic, cases: list[tuple[str, str, str, int, str]]) -> None:
    """Ask each (where, protocol, address, port, expected) and fail naming every mismatch."""
    wrong = []
    for where, protocol, address, port, expected in cases:
        answer = traffic.expect(where, protocol, address, port, expected)
        if not answer.startswith(expected):
            wrong.append(f"{where} -> {address}:{port}/{protocol}: {answer!r}, not {expected!r}")
    assert not wrong, "\n".join(wrong)


# Forms ----------------------------------------------------------------------------------------

EVERY_FORM = [
    "-p", "8080:80", "-p", "127.0.0.1:8081:80", "-p", "192.0.2.1:8082:80", "-p", "80",
    "-p", "8000-8002:80-82", "-p", "5353:53/udp",
]  # fmt: skip


def test_every_publish_form_answers(traffic: Traffic, daemon: Daemon) -> None:
    traffic.serve("web", *EVERY_FORM, ports=(80, 81, 82, 53))

    lines = port_lines(daemon, "web")
    [random_port] = [port for port in host_port_of(lines, "80/tcp") if port not in (8000, 8080)]
    assert random_port in local_port_range(daemon), lines

    check_reached(
        traffic,
        [
            ("outside", "tcp", HOST, 8080, f"web:80 {OUTSIDE}"),
            ("host", "tcp", "127.0.0.1", 8081, "web:80"),
            ("outside", "tcp", HOST, 8082, f"web:80 {OUTSIDE}"),
            ("outside", "tcp", HOST, random_port, f"web:80 {OUTSIDE}"),
            ("outside", "tcp", HOST, 8000, f"web:80 {OUTSIDE}"),
            ("outside", "tcp", HOST, 8001, f"web:81 {OUTSIDE}"),
            ("outside", "tcp", HOST, 8002, f"web:82 {OUTSIDE}"),
            ("outside", "udp", HOST, 5353, f"web:53 {OUTSIDE}"),
        ],
    )
    # Only what was published: 127.0.0.1:8081 is not on the uplink, 53/tcp and 8003 are not.
    for protocol, port in (("tcp", 8081), ("tcp", 5353), ("tcp", 8003), ("udp", 8080)):
        answer = traffic.ask("outside", protocol, HOST, port)
        assert answer.startswith(NO_ANSWER), f"{port}/{protocol}: {answer}"


def test_a_network_host_binding_address_is_the_default_host_ip(
    traffic: Traffic, daemon: Daemon
) -> None:
    daemon.cli("network", "create", "-o", "com.docker.network.bridge.host_binding_ipv4=127.0.0.1",
               "--subnet", "10.93.0.0/24", "local")  # fmt: skip
    traffic.serve("web", "--network", "local", "-p", "8181:80", "-p", "0.0.0.0:8182:80")

    assert sorted(port_lines(daemon, "web")) == [
        "80/tcp -> 0.0.0.0:8182",
        "80/tcp -> 127.0.0.1:8181",
    ]
    check_reached(
        traffic,
        [
            ("host", "tcp", "127.0.0.1", 8181, "web:80"),
            ("outside", "tcp", HOST, 8182, f"web:80 {OUTSIDE}"),
        ],
    )
    answer = traffic.ask("outside", "tcp", HOST, 8181)
    assert answer.startswith(NO_ANSWER), f"8181 answered from outside: {answer}"


def test_a_stopped_container_frees_its_host_port_and_takes_it_again_at_start(
    traffic: Traffic, daemon: Daemon
) -> None:
    """Regression: an exited container kept its host port (and its DNAT element), as Docker
    does not: another container could not publish it."""
    traffic.serve("first", "-p", "8090:80")
    daemon.cli("stop", "-t", "1", "first")

    assert port_lines(daemon, "first") == []
    assert "8090" not in daemon.cli("ps", "-a").stdout
    assert "8090" not in daemon.exec_in_host("nft", "list", "table", "inet", "nsnet").stdout
    traffic.serve("second", "-p", "8090:80")
    check_reached(traffic, [("outside", "tcp", HOST, 8090, f"second:80 {OUTSIDE}")])

    refused = daemon.cli("start", "first", check=False)
    assert refused.returncode != 0
    assert "already held by container 'second'" in refused.stderr, refused.stderr
    assert json.loads(daemon.cli("inspect", "first").stdout)[0]["State"]["Status"] == "exited"

    daemon.cli("rm", "-f", "second")
    daemon.cli("start", "first")
    assert port_lines(daemon, "first") == ["80/tcp -> 0.0.0.0:8090"]
    check_reached(traffic, [("outside", "tcp", HOST, 8090, f"first:80 {OUTSIDE}")])


def test_publish_all_publishes_exposed_ports_on_free_ports(
    traffic: Traffic, daemon: Daemon
) -> None:
    traffic.serve(
        "web",
        "-P",
        "--expose",
        "90",
        "--expose",
        "91-92/udp",
        "-p",
        "8080:80",
        ports=(80, 90, 91, 92),
    )

    lines = port_lines(daemon, "web")
    chosen = {key: host_port_of(lines, key) for key in ("90/tcp", "91/udp", "92/udp")}
    assert host_port_of(lines, "80/tcp") == [8080], lines
    for key, ports in chosen.items():
        assert len(ports) == 1 and ports[0] in local_port_range(daemon), (key, lines)
    assert len({port for [port] in chosen.values()}) == 2 or chosen["91/udp"] != chosen["92/udp"]

    check_reached(
        traffic,
        [
            ("outside", "tcp", HOST, 8080, f"web:80 {OUTSIDE}"),
            ("outside", "tcp", HOST, chosen["90/tcp"][0], f"web:90 {OUTSIDE}"),
            ("outside", "udp", HOST, chosen["91/udp"][0], f"web:91 {OUTSIDE}"),
            ("outside", "udp", HOST, chosen["92/udp"][0], f"web:92 {OUTSIDE}"),
        ],
    )


def test_random_host_ports_differ_between_containers(traffic: Traffic, daemon: Daemon) -> None:
    traffic.serve("first", "-p", "80")
    traffic.serve("second", "-p", "80")

    [first] = host_port_of(port_lines(daemon, "first"), "80/tcp")
    [second] = host_port_of(port_lines(daemon, "second"), "80/tcp")
    assert first != second
    check_reached(
        traffic,
        [
            ("outside", "tcp", HOST, first, f"first:80 {OUTSIDE}"),
            ("outside", "tcp", HOST, second, f"second:80 {OUTSIDE}"),
        ],
    )


def test_nsnet_port_prints_what_docker_port_prints(daemon: Daemon) -> None:
    daemon.cli("create", "--name", "web", *EVERY_FORM, "--", "sleep", "1")
    [random_port] = [
        port
        for port in host_port_of(port_lines(daemon, "web"), "80/tcp")
        if port not in (8000, 8080)
    ]

    # docker port's own order: every line sorted naturally (numbers by value).
    expected = [
        "53/udp -> 0.0.0.0:5353",
        "80/tcp -> 0.0.0.0:8000",
        "80/tcp -> 0.0.0.0:8080",
        f"80/tcp -> 0.0.0.0:{random_port}",
        "80/tcp -> 127.0.0.1:8081",
        "80/tcp -> 192.0.2.1:8082",
        "81/tcp -> 0.0.0.0:8001",
        "82/tcp -> 0.0.0.0:8002",
    ]
    one_port = ["0.0.0.0:8000", "0.0.0.0:8080", f"0.0.0.0:{random_port}", "127.0.0.1:8081",
                "192.0.2.1:8082"]  # fmt: skip
    assert daemon.docker("port", "web").stdout.splitlines() == expected
    assert daemon.docker("port", "web", "80").stdout.splitlines() == one_port

    assert port_lines(daemon, "web", "53/udp") == ["0.0.0.0:5353"]
    missing = daemon.cli("port", "web", "54", check=False)
    assert (missing.returncode, missing.stderr) == (
        1,
        "Error: No public port '54' published for web\n",
    )
    assert port_lines(daemon, "web") == expected
    assert port_lines(daemon, "web", "80") == one_port


def test_host_port_range_takes_a_free_port_of_it(traffic: Traffic, daemon: Daemon) -> None:
    for name in ("first", "second"):
        daemon.cli("run", "-d", "--name", name, "-p", "8100-8102:80", "--", "sleep", "60")
    traffic.serve("third", "-p", "8100-8102:80")

    chosen = [host_port_of(port_lines(daemon, name), "80/tcp") for name in ("first", "second")]
    assert chosen == [[8100], [8101]]
    assert host_port_of(port_lines(daemon, "third"), "80/tcp") == [8102]
    check_reached(traffic, [("outside", "tcp", HOST, 8102, f"third:80 {OUTSIDE}")])

    # The whole range is taken: refused, naming it, and nothing changes.
    message = refused(daemon, "fourth", "-p", "8100-8102:80")
    assert "8100-8102" in message, message


# Conflicts ------------------------------------------------------------------------------------


def snapshot(daemon: Daemon) -> dict[str, str]:
    """What a refused create must leave unchanged: the ruleset, the containers, the links."""
    ruleset = daemon.exec_in_host("nft", "list", "table", "inet", "nsnet").stdout
    identifiers = daemon.cli("ps", "-a", "-q", "--no-trunc").stdout
    containers = [
        (entry["Names"], entry["Ports"])
        for entry in daemon.api("GET", "/containers/json?all=1").json()
    ]
    links = daemon.exec_in_host("ip", "-br", "link").stdout
    mounts = Path("/proc/self/mountinfo").read_text()
    return {
        "ruleset": ruleset,
        "containers": f"{identifiers}{containers}",
        "links": "\n".join(sorted(line.split()[0] for line in links.splitlines())),
        "mounts": "\n".join(
            sorted(line.split()[4] for line in mounts.splitlines() if str(daemon.root) in line)
        ),
    }


def refused(daemon: Daemon, name: str, *options: str) -> str:
    """``nsnet run`` that must fail and change nothing; its error message."""
    before = snapshot(daemon)
    completed = daemon.cli("run", "-d", "--name", name, *options, "--", "sleep", "60", check=False)
    assert completed.returncode == EXIT_FAILED_TO_RUN, (completed.stdout, completed.stderr)
    after = snapshot(daemon)
    for key in before:
        assert after[key] == before[key], f"the refused create changed the {key}"
    return completed.stderr.strip()


def test_a_published_port_is_refused_naming_its_container(
    traffic: Traffic, daemon: Daemon
) -> None:
    traffic.serve("web", "-p", "8080:80", "-p", "127.0.0.1:8081:80", "-p", "192.0.2.1:8082:80")

    # The same port, or an overlapping address (the wildcard covers every address); the
    # conflict on the last of several ports leaves the first ones unpublished too.
    for options in (
        ["-p", "8080:80"],
        ["-p", "9000:80", "-p", "192.0.2.1:8080:80"],
        ["-p", "127.0.0.1:8081:80"],
        ["-p", "8081:80"],
        ["-p", "8082:80"],
        ["-p", "9001:80", "-p", "9002:81", "-p", "192.0.2.1:8082:82"],
    ):
        message = refused(daemon, "second", *options)
        assert "cannot publish port" in message and "'web'" in message, (options, message)
    assert traffic.ask("outside", "tcp", HOST, 9000).startswith(NO_ANSWER)

    # Another protocol, or another address of a one-address binding, is no conflict.
    traffic.serve("other", "-p", "8080:80/udp", "-p", "192.0.2.1:8081:80")
    check_reached(
        traffic,
        [
            ("outside", "udp", HOST, 8080, f"other:80 {OUTSIDE}"),
            ("outside", "tcp", HOST, 8081, f"other:80 {OUTSIDE}"),
            ("outside", "tcp", HOST, 8080, f"web:80 {OUTSIDE}"),
            ("host", "tcp", "127.0.0.1", 8081, "web:80"),
        ],
    )


def test_reconnecting_to_a_port_taken_meanwhile_is_refused_naming_the_taker(
    traffic: Traffic, daemon: Daemon
) -> None:
    traffic.serve("alpha", "-p", "8080:80")
    daemon.cli("network", "disconnect", "bridge", "alpha")  # its binding goes with it
    traffic.serve("bravo", "-p", "8080:80")

    before = snapshot(daemon)
    completed = daemon.cli("network", "connect", "bridge", "alpha", check=False)
    assert completed.returncode == 1, completed
    assert "cannot publish port" in completed.stderr and "'bravo'" in completed.stderr
    assert snapshot(daemon) == before
    check_reached(traffic, [("outside", "tcp", HOST, 8080, f"bravo:80 {OUTSIDE}")])

    # Once the port is free again, alpha gets it back with its network.
    daemon.cli("rm", "-f", "bravo")
    daemon.cli("network", "connect", "bridge", "alpha")
    check_reached(traffic, [("outside", "tcp", HOST, 8080, f"alpha:80 {OUTSIDE}")])


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_a_port_held_in_the_host_is_refused_naming_the_process(
    daemon: Daemon, protocol: str
) -> None:
    host = daemon.topology.host
    holder = host.popen(
        sys.executable, "-c", HOLDER, protocol, "9090", stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "ready"
    # busybox nc as a second kind of listener (TCP only: its UDP mode needs a peer).
    nc = host.popen("busybox", "nc", "-l", "-p", "9091") if protocol == "tcp" else None
    try:
        message = refused(daemon, "web", "-p", f"9090:80/{protocol}")
        assert f"process {holder.pid} (python" in message, message
        assert f"9090/{protocol}" in message, message

        if nc is not None:
            deadline = time.monotonic() + 5
            while ":9091 " not in daemon.exec_in_host("ss", "-H", "-ltn").stdout:
                assert time.monotonic() < deadline, "busybox nc never listened"
                time.sleep(0.05)
            message = refused(daemon, "web", "-p", "9091:80")
            assert f"process {nc.pid} (busybox)" in message, message
    finally:
        for process in (holder, nc):
            if process is not None:
                process.kill()
                process.wait()

    # Once the socket is gone, the port can be published.
    daemon.cli("run", "-d", "--name", "web", "-p", f"9090:80/{protocol}", "--", "sleep", "60")


def test_sctp_is_refused_naming_the_missing_kernel_support(daemon: Daemon) -> None:
    message = refused(daemon, "web", "-p", "7000:80/sctp")
    assert "no SCTP support" in message, message
    assert "80/sctp" in message, message
