"""1,000 port bindings through the real nsnetd, one change at a time (issue 3, point 4).

Bindings live in nftables maps, so the 1,000th costs what the first did: the ruleset holds as
many rules with 1,000 bindings as with one, a change is a transaction of element updates only
(``nft monitor`` sees nothing else), and the last binding still answers. The time of every
change is printed (the checker reads it; nothing is asserted on it: machines differ).

Containers are created through the API (``POST /containers/create``, one published port each)
rather than the CLI, so that what is timed is the daemon's work, not the CLI's start-up; they
are spread over two networks to stay far below a bridge's 1,024 ports.
"""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.support.cleanup import mounts_under
from tests.support.daemon import Daemon
from tests.support.netns import run

HOST = "192.0.2.1"
OUTSIDE = "192.0.2.100"
BINDINGS = 1000
FIRST_HOST_PORT = 20000
NETWORKS = ("bridge", "wide")

# Answers "<name> <peer address>" on one TCP port.
SERVER = r"""
import socket, sys
name, port = sys.argv[1], int(sys.argv[2])
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("0.0.0.0", port))
listener.listen(16)
print("ready", flush=True)
while True:
    connection, (address, _port) = listener.accept()
    connection.sendall(f"{name} {address}\n".encode())
    connection.close()
"""

CLIENT = r"""
import socket, sys
try:
    print(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).recv(100).decode())
except OSError as error:
    print("no answer", type(error).__name__)
"""


def create_body(network: str, host_port: int) -> dict:
    """Docker's create body for ``-p HOST_PORT:80 --network NETWORK -- sleep 1``."""
    return {
        "Image": "",
        "Cmd": ["sleep", "1"],
        "ExposedPorts": {"80/tcp": {}},
        "HostConfig": {
            "NetworkMode": network,
            "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": str(host_port)}]},
        },
    }


def create(daemon: Daemon, name: str, network: str, host_port: int) -> float:
    """Create one container with one binding; the seconds it took."""
    started = time.perf_counter()
    answer = daemon.api("POST", f"/containers/create?name={name}", create_body(network, host_port))
    elapsed = time.perf_counter() - started
    assert answer.status == 201, answer.text
    return elapsed


def remove(daemon: Daemon, name: str) -> float:
    started = time.perf_counter()
    answer = daemon.api("DELETE", f"/containers/{name}?force=1")
    elapsed = time.perf_counter() - started
    assert answer.status == 204, answer.text
    return elapsed


def ruleset_counts(daemon: Daemon) -> tuple[int, int]:
    """(rules of nsnet's tables, elements of the wildcard_addresses map)."""
    listing = json.loads(daemon.exec_in_host("nft", "-j", "list", "ruleset").stdout)["nftables"]
    rules = sum(1 for item in listing if item.get("rule", {}).get("table") == "nsnet")
    [bindings] = [
        item["map"]
        for item in listing
        if item.get("map", {}).get("table") == "nsnet"
        and item["map"]["name"] == "wildcard_addresses"
    ]
    return rules, len(bindings.get("elem", []))


def summary(label: str, times: list[float]) -> str:
    milliseconds = sorted(time * 1000 for time in times)
    return (
        f"{label}: {len(times)} changes, median {statistics.median(milliseconds):.1f} ms, "
        f"p90 {milliseconds[int(len(milliseconds) * 0.9)]:.1f} ms, max {milliseconds[-1]:.1f} ms"
    )


def monitored(daemon: Daemon, action) -> list[str]:
    """The ``nft monitor`` lines (ruleset changes) that ``action()`` causes in the host."""
    monitor = subprocess.Popen(
        daemon.nsenter_argv("nft", "monitor", "ruleset"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        time.sleep(0.3)  # the monitor subscribes before anything happens
        action()
        time.sleep(0.3)
    finally:
        monitor.terminate()
        output, _ = monitor.communicate(timeout=5)
    return [line for line in output.splitlines() if line.strip()]


def unmount_all(daemon: Daemon) -> None:
    """Stop the daemon and unmount its 2,000 namespace files a few hundred per command.

    The fixture's cleanup would do it one ``umount`` per file, which takes longer than the test.
    """
    daemon.stop()
    points = [mount.mount_point for mount in mounts_under(daemon.root)]  # deepest first
    for start in range(0, len(points), 500):
        run(["umount", "-l", *points[start : start + 500]])


def test_thousand_bindings_keep_the_rule_count(daemon: Daemon, tmp_path: Path) -> None:
    daemon.cli("network", "create", "wide")
    times = [create(daemon, "binding0", NETWORKS[0], FIRST_HOST_PORT)]
    rules_with_one, bindings = ruleset_counts(daemon)
    assert bindings == 1

    for number in range(1, BINDINGS):
        network = NETWORKS[number % len(NETWORKS)]
        times.append(create(daemon, f"binding{number}", network, FIRST_HOST_PORT + number))

    rules, bindings = ruleset_counts(daemon)
    assert (rules, bindings) == (rules_with_one, BINDINGS)
    print()
    print(summary("create, bindings 1-100", times[:100]))
    print(summary(f"create, bindings {BINDINGS - 99}-{BINDINGS}", times[-100:]))
    print(summary(f"create, all {BINDINGS}", times))

    # One more change, watched: element updates only, no table, chain or rule.
    server = tmp_path / "server.py"
    server.write_text(SERVER)
    last_port = FIRST_HOST_PORT + BINDINGS
    changes = monitored(
        daemon,
        lambda: daemon.cli(
            "run",
            "-d",
            "--name",
            "last",
            "-p",
            f"{last_port}:80",
            "--",
            sys.executable,
            str(server),
            "last",
            "80",
        ),  # fmt: skip
    )
    assert changes and all(line.startswith("add element inet nsnet ") for line in changes), changes
    assert ruleset_counts(daemon) == (rules_with_one, BINDINGS + 1)

    # The 1,001st binding answers, through maps of a thousand elements.
    deadline = time.monotonic() + 10
    while "ready" not in daemon.cli("logs", "last").stdout:
        assert time.monotonic() < deadline, "the server never got ready"
        time.sleep(0.05)
    answer = daemon.topology.outside.run(sys.executable, "-c", CLIENT, HOST, str(last_port))
    assert answer.stdout.strip() == f"last {OUTSIDE}"

    # Removal, watched and timed: element deletions only.
    changes = monitored(daemon, lambda: daemon.cli("rm", "-f", "last"))
    assert changes and all(line.startswith("delete element inet nsnet ") for line in changes), (
        changes
    )
    removals = [remove(daemon, f"binding{number}") for number in range(BINDINGS - 1, 899, -1)]
    print(summary("rm, bindings 1000-901", removals))
    assert ruleset_counts(daemon) == (rules_with_one, 900)

    unmount_all(daemon)


def test_thousand_ports_of_one_container_in_one_change(daemon: Daemon) -> None:
    rules_before, _ = ruleset_counts(daemon)

    timings = {}
    for name, spec in (("tcp", "30000-30999:30000-30999"), ("udp", "31000-31999:30000-30999/udp")):
        started = time.perf_counter()
        daemon.cli("create", "--name", name, "-p", spec, "--", "sleep", "1")
        timings[f"create with 1,000 {name} ports"] = time.perf_counter() - started
    rules, bindings = ruleset_counts(daemon)
    assert (rules, bindings) == (rules_before, 2 * BINDINGS)

    for name in ("tcp", "udp"):
        started = time.perf_counter()
        daemon.cli("rm", name)
        timings[f"rm with 1,000 {name} ports"] = time.perf_counter() - started
    assert ruleset_counts(daemon) == (rules_before, 0)
    print()
    for label, seconds in timings.items():
        print(f"{label} (CLI included): {seconds:.2f} s")
