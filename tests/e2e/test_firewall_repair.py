"""The firewall's state through the real nsnetd and CLI: removal, repair, info (issue 3, 1 and 6).

After create/publish/rm cycles (and ``network disconnect``), nsnet's tables hold no element of a
removed container and conntrack no entry of its address. A ruleset flushed while the daemon
was down (killed with SIGKILL) is rendered whole again at start, and published ports answer
again; another table is never touched. ``nsnet info`` prints the tables and the rule count,
and a foreign FORWARD policy of DROP (iptables, as Docker sets it) is reported in the daemon's
log and by ``nsnet info``.
"""

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.topology import HostWithOutside

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
        details = json.loads(self.daemon.cli("inspect", name).stdout)[0]
        [settings] = details["NetworkSettings"]["Networks"].values()
        return settings["IPAddress"]

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


# The kernel's view ------------------------------------------------------------------------------


def nsnet_tables(daemon: Daemon) -> list[str]:
    """nsnet's tables as listed by nft, without handles and in a stable order."""
    listing = json.loads(daemon.exec_in_host("nft", "-j", "list", "ruleset").stdout)
    items = []
    for item in listing["nftables"]:
        [(kind, body)] = item.items()
        # A table names itself; everything else names its table.
        if kind == "metainfo" or body.get("table", body.get("name")) != "nsnet":
            continue
        body = {key: value for key, value in body.items() if key != "handle"}
        if "elem" in body:
            body["elem"] = sorted(json.dumps(element, sort_keys=True) for element in body["elem"])
        items.append(json.dumps({kind: body}, sort_keys=True))
    return sorted(items)


def elements(daemon: Daemon) -> dict[str, list[str]]:
    """Every set and map of nsnet's tables with its elements (as text)."""
    found = {}
    for item in nsnet_tables(daemon):
        [(kind, body)] = json.loads(item).items()
        if kind in ("set", "map"):
            found[f"{body['family']} {body['name']}"] = body.get("elem", [])
    return found


def rule_count(daemon: Daemon) -> int:
    return sum(1 for item in nsnet_tables(daemon) if item.startswith('{"rule"'))


def conntrack_lines_of(daemon: Daemon, addresses: set[str]) -> list[str]:
    """The host's conntrack entries that name one of ``addresses`` anywhere."""
    listing = daemon.exec_in_host("conntrack", "-L", check=False).stdout
    return [
        line
        for line in listing.splitlines()
        if any(f"={address} " in f"{line} " for address in addresses)
    ]


def make_flows(traffic: Traffic, name: str, port: int) -> None:
    """Inbound through the published port (TCP, UDP, localhost) and outbound flows of one."""
    traffic.check(
        [
            ("outside", "tcp", HOST, port, f"{name}:80 {OUTSIDE}"),
            ("outside", "udp", HOST, port, f"{name}:80 {OUTSIDE}"),
            ("host", "tcp", "127.0.0.1", port, f"{name}:80"),
            (name, "tcp", OUTSIDE, OUTSIDE_PORT, "outside"),
            (name, "udp", OUTSIDE, OUTSIDE_PORT, "outside"),
            (name, "tcp", HOST, port, f"{name}:80"),
        ]
    )


# Removal ----------------------------------------------------------------------------------------


def test_removed_containers_leave_no_element_and_no_conntrack_entry(
    traffic: Traffic, daemon: Daemon
) -> None:
    daemon.cli("network", "create", "cycle")
    traffic.serve_outside()
    baseline = elements(daemon)
    rules = rule_count(daemon)

    for cycle in range(2):
        removed_by = {}
        for number, (network, removal) in enumerate(
            [("bridge", "rm -f"), ("cycle", "disconnect"), ("cycle", "stop, rm")]
        ):
            name, port = f"c{cycle}x{number}", 8080 + number
            address = traffic.serve(
                name, "--network", network, "-p", f"{port}:80", "-p", f"{port}:80/udp"
            )
            make_flows(traffic, name, port)
            assert conntrack_lines_of(daemon, {address}), "the flows left no conntrack entry"
            removed_by[name] = (network, removal, address)

        for name, (network, removal, address) in removed_by.items():
            if removal == "rm -f":
                daemon.cli("rm", "-f", name)
            elif removal == "disconnect":
                daemon.cli("network", "disconnect", network, name)
            else:
                daemon.cli("stop", "-t", "1", name)
                daemon.cli("rm", name)
            left = conntrack_lines_of(daemon, {address})
            assert not left, f"{removal} of {name} ({address}) left:\n" + "\n".join(left)
            if removal == "disconnect":
                daemon.cli("rm", "-f", name)

        assert elements(daemon) == baseline, f"cycle {cycle}"
        assert rule_count(daemon) == rules

    # And they are gone for real: nothing answers on their host ports any more.
    traffic.check([("outside", "tcp", HOST, 8080 + number, NO_ANSWER) for number in range(3)])


def test_a_restart_forgets_flows_of_addresses_no_container_holds(
    traffic: Traffic, daemon: Daemon
) -> None:
    traffic.serve_outside()
    live = traffic.serve("web", "-p", "8080:80", "-p", "8080:80/udp")
    make_flows(traffic, "web", 8080)
    # What a crash between a container's removal and its flush leaves: flows of an address
    # that no container holds any more, outbound and DNATed inbound.
    for flow in (
        ["-s", "172.17.0.99", "-d", OUTSIDE, "-p", "udp", "--sport", "1000", "--dport", "2000"],
        ["-s", OUTSIDE, "-d", HOST, "-p", "tcp", "--sport", "40000", "--dport", "8090",
         "-r", "172.17.0.98", "-q", OUTSIDE, "--reply-port-src", "80",
         "--reply-port-dst", "40000", "--state", "ESTABLISHED", "-u", "SEEN_REPLY"],
        ["-s", OUTSIDE, "-d", HOST, "-p", "udp", "--sport", "3000", "--dport", "4000"],
    ):  # fmt: skip
        daemon.exec_in_host("conntrack", "-I", *flow, "-t", "100")
    assert conntrack_lines_of(daemon, {"172.17.0.99"}) and conntrack_lines_of(
        daemon, {"172.17.0.98"}
    )
    stale = {"172.17.0.99", "172.17.0.98"}

    def flows_to_keep() -> set[str]:
        """The living container's flows and the host's own, without state and timeout."""
        lines = set(conntrack_lines_of(daemon, {live, OUTSIDE}))
        lines -= set(conntrack_lines_of(daemon, stale))
        return {line.split("src=", 1)[1] for line in lines}

    kept = flows_to_keep()
    daemon.kill9()
    daemon.start()
    assert conntrack_lines_of(daemon, stale) == []
    assert kept <= flows_to_keep()


# Repair -----------------------------------------------------------------------------------------


def test_a_ruleset_flushed_while_the_daemon_was_down_is_rendered_whole_again(
    traffic: Traffic, daemon: Daemon
) -> None:
    daemon.cli("network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "quiet")
    daemon.cli("network", "create", "--internal", "inner")
    traffic.serve("web", "-p", "8080:80", "-p", "127.0.0.1:8081:80", "-p", "5353:80/udp")
    first = traffic.serve("q1", "--network", "quiet", "-p", "8082:80")
    second = traffic.serve("q2", "--network", "quiet")
    traffic.serve("i1", "--network", "inner")
    # Another table, which nsnet must leave as it is.
    daemon.exec_in_host("nft", "add", "table", "inet", "foreign")
    daemon.exec_in_host("nft", "add", "chain", "inet", "foreign", "counted")
    daemon.exec_in_host("nft", "add", "rule", "inet", "foreign", "counted", "tcp", "dport", "7")
    foreign = daemon.exec_in_host("nft", "list", "table", "inet", "foreign").stdout
    before = nsnet_tables(daemon)
    assert {"inet", "bridge"} <= {
        json.loads(item).get("table", {}).get("family") for item in before
    }

    daemon.kill9()
    daemon.exec_in_host("nft", "flush", "ruleset")
    assert daemon.exec_in_host("nft", "list", "ruleset").stdout.strip() == ""
    traffic.check([("outside", "tcp", HOST, 8080, NO_ANSWER)])
    daemon.exec_in_host("nft", "-f", "-", input=foreign)

    daemon.start()
    assert nsnet_tables(daemon) == before
    assert daemon.exec_in_host("nft", "list", "table", "inet", "foreign").stdout == foreign
    traffic.check(
        [
            ("outside", "tcp", HOST, 8080, f"web:80 {OUTSIDE}"),
            ("outside", "udp", HOST, 5353, f"web:80 {OUTSIDE}"),
            ("host", "tcp", "127.0.0.1", 8081, "web:80"),
            ("outside", "tcp", HOST, 8082, f"q1:80 {OUTSIDE}"),
            ("q1", "tcp", second, 80, NO_ANSWER),
            ("q2", "tcp", first, 80, NO_ANSWER),
            ("i1", "tcp", OUTSIDE, 80, NO_ANSWER),
        ]
    )

    # Changes after the repair touch only nsnet's elements.
    traffic.serve("late", "-p", "8090:80")
    daemon.cli("rm", "-f", "late", "web")
    assert daemon.exec_in_host("nft", "list", "table", "inet", "foreign").stdout == foreign


def test_a_restart_renders_the_same_tables(traffic: Traffic, daemon: Daemon) -> None:
    daemon.cli("network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "quiet")
    traffic.serve("web", "-p", "8080:80", "-p", "192.0.2.1:8081:80/udp")
    traffic.serve("q1", "--network", "quiet", "-p", "8082:80")
    before = nsnet_tables(daemon)

    daemon.restart()
    assert nsnet_tables(daemon) == before
    daemon.kill9()
    daemon.start()
    assert nsnet_tables(daemon) == before
    traffic.check(
        [
            ("outside", "tcp", HOST, 8080, f"web:80 {OUTSIDE}"),
            ("outside", "udp", HOST, 8081, f"web:80 {OUTSIDE}"),
            ("outside", "tcp", HOST, 8082, f"q1:80 {OUTSIDE}"),
        ]
    )


# nsnet info -------------------------------------------------------------------------------------


def info_rows(daemon: Daemon) -> tuple[dict[str, str], str]:
    """``nsnet info``'s "label: value" rows (labels stripped) and its stderr."""
    completed = daemon.cli("info")
    rows = {}
    for line in completed.stdout.splitlines():
        label, _, value = line.partition(":")
        rows.setdefault(label.strip(), value.strip())
    return rows, completed.stderr


def test_info_prints_the_firewall_state(traffic: Traffic, daemon: Daemon) -> None:
    rows, warnings = info_rows(daemon)
    assert rows["Tables"] == "inet nsnet", rows
    assert int(rows["Rules"]) == rule_count(daemon) > 0
    assert rows["Warnings"] == "0" and warnings == "", (rows, warnings)

    daemon.cli("network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "quiet")
    daemon.cli("create", "--name", "web", "-p", "8080:80", "-p", "8081:81", "--", "sleep", "1")
    rows, _ = info_rows(daemon)
    assert rows["Tables"] == "inet nsnet, bridge nsnet", rows
    assert int(rows["Rules"]) == rule_count(daemon)
    assert rows["inet nsnet wildcard_addresses"] == "2", rows
    assert rows["inet nsnet bridges"] == "2", rows


def test_a_foreign_forward_drop_is_reported_in_the_log_and_by_info(
    host: HostWithOutside, daemon_factory, tmp_path: Path
) -> None:
    # What Docker does to a host: iptables (nft backend here) FORWARD policy DROP.
    host.host.run("iptables", "-P", "FORWARD", "DROP")
    daemon = daemon_factory(host)

    log = daemon.console_log.read_text() + (
        daemon.log_file.read_text() if daemon.log_file.exists() else ""
    )
    assert "forward policy of drop" in log and "FORWARD" in log, daemon.logs()

    rows, stderr = info_rows(daemon)
    assert rows["Warnings"] == "1", rows
    assert stderr.startswith("WARNING: ") and "'ip filter FORWARD'" in stderr, stderr
    assert "forward policy of drop" in stderr, stderr

    # The warning is not idle: forwarded traffic to a published port is indeed dropped.
    traffic = Traffic(daemon, tmp_path)
    traffic.serve("web", "-p", "8080:80")
    traffic.check(
        [("outside", "tcp", HOST, 8080, NO_ANSWER), ("host", "tcp", "127.0.0.1", 8080, "web:80")]
    )


def test_info_warns_of_a_drop_policy_or_a_flush_that_came_while_running(daemon: Daemon) -> None:
    rows, stderr = info_rows(daemon)
    assert rows["Warnings"] == "0", (rows, stderr)

    # Docker started after nsnetd: its FORWARD policy of DROP is reported from then on.
    daemon.exec_in_host("iptables", "-P", "FORWARD", "DROP")
    rows, stderr = info_rows(daemon)
    assert rows["Warnings"] == "1" and "'ip filter FORWARD'" in stderr, (rows, stderr)
    log = daemon.console_log.read_text() + (
        daemon.log_file.read_text() if daemon.log_file.exists() else ""
    )
    assert log.count("'ip filter FORWARD' has a forward policy of drop") == 1, daemon.logs()

    daemon.exec_in_host("iptables", "-P", "FORWARD", "ACCEPT")
    rows, stderr = info_rows(daemon)
    assert rows["Warnings"] == "0", (rows, stderr)

    # A ruleset flushed under the running daemon is said to be missing, until a restart.
    daemon.exec_in_host("nft", "flush", "ruleset")
    rows, stderr = info_rows(daemon)
    assert rows["Tables"] == "none" and rows["Warnings"] == "1", rows
    assert "'inet nsnet' is missing" in stderr, stderr
    daemon.restart()
    rows, stderr = info_rows(daemon)
    assert rows["Tables"] == "inet nsnet" and rows["Warnings"] == "0", (rows, stderr)
