"""Isolation through the real nsnetd and CLI (issue 3, points 2 and 5).

Two user networks cannot reach each other in either direction, though each reaches the
other's published ports through the host's address. An ``--internal`` network has no default
route and nothing passes in or out of it, and both the flag and the blocking survive a daemon
restart and a crash (moby#24176). ``enable_icc=false`` keeps the containers of one bridge
apart while they still reach the outside and published ports; ``enable_ip_masquerade=false``
shows the outside the container's own address. Real TCP and UDP traffic between the test's
namespaces only; the outside namespace (192.0.2.100) runs a server of its own.
"""

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.daemon import Daemon

HOST = "192.0.2.1"
OUTSIDE = "192.0.2.100"
OUTSIDE_PORT = 9000
NO_ANSWER = "no answer"
SILENCE = 1.5  # seconds a client waits for an answer that should not come
READY_TIMEOUT = 10
PARALLEL_CLIENTS = 8

# A server: answers "<name>:<port> <peer address>" on TCP and UDP for each port.
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


class Traffic:
    """Servers in containers and in the outside; one-shot clients at every vantage point."""

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

    def serve_outside(self) -> None:
        """A server at 192.0.2.100:9000, the internet's; killed with the outside namespace."""
        process = self.outside.popen(
            sys.executable, "-c", SERVER, "outside", str(OUTSIDE_PORT),
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stdout.readline().strip() == "ready"

    def address(self, name: str) -> str:
        """The container's address on its only network."""
        networks = self.inspect(name)["NetworkSettings"]["Networks"]
        [settings] = networks.values()
        return settings["IPAddress"]

    def inspect(self, name: str) -> dict:
        return json.loads(self.daemon.cli("inspect", name).stdout)[0]

    def network(self, name: str) -> dict:
        return json.loads(self.daemon.cli("network", "inspect", name).stdout)[0]

    def ask(self, where: str, protocol: str, address: str, port: int) -> str:
        """One request from "outside", "host" or a container's name; the answer."""
        argv = (sys.executable, "-c", CLIENT, protocol, address, str(port), str(SILENCE))
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

    def check(self, cases: list[tuple[str, str, str, int, str]]) -> None:
        """Ask each (where, protocol, address, port, expected); fail naming every mismatch.

        ``expected`` is the start of the answer, or NO_ANSWER for a path that must be closed.
        """

        def one(case: tuple[str, str, str, int, str]) -> str | None:
            where, protocol, address, port, expected = case
            if expected == NO_ANSWER:
                answer = self.ask(where, protocol, address, port)
            else:
                answer = self.expect(where, protocol, address, port, expected)
            if answer.startswith(expected):
                return None
            return f"{where} -> {address}:{port}/{protocol}: {answer!r}, not {expected!r}"

        # In parallel: each closed path costs the client's whole timeout.
        with ThreadPoolExecutor(max_workers=PARALLEL_CLIENTS) as pool:
            wrong = [problem for problem in pool.map(one, cases) if problem]
        assert not wrong, "\n".join(wrong)


@pytest.fixture
def traffic(daemon: Daemon, tmp_path: Path) -> Traffic:
    return Traffic(daemon, tmp_path)


def set_br_netfilter(daemon: Daemon, enabled: int) -> None:
    """Whether bridged frames also traverse the IP hooks; nsnet must not depend on it."""
    daemon.exec_in_host("sysctl", "-qw", f"net.bridge.bridge-nf-call-iptables={enabled}")


BR_NETFILTER = pytest.mark.parametrize(
    "br_netfilter", [1, 0], ids=["br_netfilter", "no_br_netfilter"]
)


def both_protocols(where: str, address: str, port: int, expected: str) -> list[tuple]:
    return [(where, "tcp", address, port, expected), (where, "udp", address, port, expected)]


@BR_NETFILTER
def test_two_networks_are_isolated_but_reach_each_other_published_ports(
    traffic: Traffic, daemon: Daemon, br_netfilter: int
) -> None:
    set_br_netfilter(daemon, br_netfilter)
    daemon.cli("network", "create", "left")
    daemon.cli("network", "create", "right")
    left = traffic.serve("alpha", "--network", "left", "-p", "8081:80", "-p", "8081:80/udp")
    neighbour = traffic.serve("charlie", "--network", "left")
    right = traffic.serve("bravo", "--network", "right", "-p", "8080:80", "-p", "8080:80/udp")

    traffic.check(
        [
            # The control: a neighbour on the same network answers.
            *both_protocols("alpha", neighbour, 80, f"charlie:80 {left}"),
            # Not across networks, in either direction.
            *both_protocols("alpha", right, 80, NO_ANSWER),
            *both_protocols("bravo", left, 80, NO_ANSWER),
            *both_protocols("charlie", right, 80, NO_ANSWER),
            # Published ports stay reachable through the host's address, both ways.
            *both_protocols("alpha", HOST, 8080, "bravo:80"),
            *both_protocols("bravo", HOST, 8081, "alpha:80"),
            *both_protocols("outside", HOST, 8080, f"bravo:80 {OUTSIDE}"),
            *both_protocols("outside", HOST, 8081, f"alpha:80 {OUTSIDE}"),
        ]
    )


def internal_checks(traffic: Traffic, first: str, second: str) -> None:
    routes = traffic.daemon.cli("exec", "i1", "--", "ip", "route").stdout
    assert "default" not in routes, routes
    traffic.check(
        [
            *both_protocols("i1", second, 80, f"i2:80 {first}"),
            *both_protocols("i1", OUTSIDE, OUTSIDE_PORT, NO_ANSWER),
            *both_protocols("outside", first, 80, NO_ANSWER),
            *both_protocols("outside", HOST, 8080, NO_ANSWER),
            *both_protocols("other", first, 80, NO_ANSWER),
            *both_protocols("i1", traffic.address("other"), 80, NO_ANSWER),
        ]
    )


def test_internal_network_is_closed_and_stays_so_after_a_restart(
    traffic: Traffic, daemon: Daemon
) -> None:
    daemon.cli("network", "create", "--internal", "inner")
    subnet = traffic.network("inner")["IPAM"]["Config"][0]["Subnet"]
    # The outside routes the subnet to the host only so that a leak would show; the internet
    # would not route it.
    traffic.outside.run("ip", "route", "add", subnet, "via", HOST)
    traffic.serve_outside()
    first = traffic.serve("i1", "--network", "inner", "-p", "8080:80")
    second = traffic.serve("i2", "--network", "inner")
    traffic.serve("other")
    assert traffic.network("inner")["Internal"] is True

    internal_checks(traffic, first, second)

    for restart in ("graceful", "crash"):
        if restart == "crash":
            daemon.kill9()
        daemon.restart()
        assert traffic.network("inner")["Internal"] is True, restart
        assert daemon.exec_in_host("nft", "list", "set", "inet", "nsnet", "internal_bridges")
        internal_checks(traffic, first, second)


@BR_NETFILTER
def test_icc_off_keeps_neighbours_apart_but_not_from_the_outside_or_published_ports(
    traffic: Traffic, daemon: Daemon, br_netfilter: int
) -> None:
    set_br_netfilter(daemon, br_netfilter)
    daemon.cli("network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "quiet")
    traffic.serve_outside()
    first = traffic.serve("q1", "--network", "quiet")
    second = traffic.serve("q2", "--network", "quiet", "-p", "8080:80", "-p", "8080:80/udp")
    gateway = traffic.network("quiet")["IPAM"]["Config"][0]["Gateway"]

    traffic.check(
        [
            *both_protocols("q1", second, 80, NO_ANSWER),
            *both_protocols("q2", first, 80, NO_ANSWER),
            *both_protocols("q1", OUTSIDE, OUTSIDE_PORT, f"outside:{OUTSIDE_PORT} {HOST}"),
            *both_protocols("q1", HOST, 8080, f"q2:80 {gateway}"),
            *both_protocols("outside", HOST, 8080, f"q2:80 {OUTSIDE}"),
            *both_protocols("host", first, 80, f"q1:80 {gateway}"),
        ]
    )


def test_masquerade_off_shows_the_outside_the_container_address(
    traffic: Traffic, daemon: Daemon
) -> None:
    daemon.cli(
        "network", "create", "-o", "com.docker.network.bridge.enable_ip_masquerade=false", "plain"
    )
    subnet = traffic.network("plain")["IPAM"]["Config"][0]["Subnet"]
    # The way back to an unmasqueraded address, as a router upstream would have it.
    traffic.outside.run("ip", "route", "add", subnet, "via", HOST)
    traffic.serve_outside()
    own = traffic.serve("m1", "--network", "plain")
    traffic.serve("masqueraded")

    traffic.check(
        [
            *both_protocols("m1", OUTSIDE, OUTSIDE_PORT, f"outside:{OUTSIDE_PORT} {own}"),
            *both_protocols(
                "masqueraded", OUTSIDE, OUTSIDE_PORT, f"outside:{OUTSIDE_PORT} {HOST}"
            ),
        ]
    )
