"""Overlay networks across three hosts: real nsnetd daemons, a real etcd, VXLAN on an underlay.

Each test builds its own cluster (tests/support/etcd.py): a fabric bridge in a namespace of its
own, three host namespaces on it at 198.51.100.1-3, etcd at 198.51.100.100 and an "outside" at
198.51.100.254. The daemons run with a short lease TTL so that a dead host's endpoints vanish
quickly. What is checked is what a user would see: traffic, names, addresses, and the FDB and
neighbour entries of each host's VXLAN device.
"""

import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.etcd import (
    OUTSIDE_ADDRESS,
    cluster_factory,
    etcd_available,
    fdb_entries,
    neighbours,
    overlay_netns,
)
from tests.support.netns import run

TTL = 3  # seconds: the daemons' lease, so a dead host is forgotten quickly
EXPIRY_SLACK = 6.0  # etcd checks expiries every half second; the watch adds milliseconds
REACH_DEADLINE = 1.0  # a container started on one host is reachable from another within this

pytestmark = pytest.mark.skipif(
    not etcd_available(), reason="Debian's etcd (/usr/bin/etcd, package etcd-server) is missing"
)


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator:
    """``make_cluster(hosts=3, mtu=1500)``: a cluster with the short TTL; all removed after."""
    with cluster_factory(tmp_path, TTL) as make:
        yield make


def container_address(daemon: Daemon, container: str, network: str) -> str:
    document = json.loads(daemon.cli("inspect", container).stdout)[0]
    return document["NetworkSettings"]["Networks"][network]["IPAddress"]


def container_mac(daemon: Daemon, container: str, network: str) -> str:
    document = json.loads(daemon.cli("inspect", container).stdout)[0]
    return document["NetworkSettings"]["Networks"][network]["MacAddress"]


def wait_for(condition, timeout: float, what: str, interval: float = 0.02) -> float:
    """Poll ``condition`` until true; return how long it took, or fail naming ``what``."""
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def sleeper(daemon: Daemon, name: str, *flags: str) -> None:
    daemon.cli("run", "-d", "--name", name, "--network", "ov", *flags, "--", "sleep", "600")


def two_hosts_on_ov(make_cluster, first: str, second: str):
    """A two-host cluster with overlay network ov and a sleeper on each host; (cluster, hosts)."""
    cluster = make_cluster(hosts=2)
    one, two = cluster.daemons
    one.cli("network", "create", "-d", "overlay", "ov")
    sleeper(one, first)
    sleeper(two, second)
    return cluster, one, two


def sleeper_once_the_store_answers(daemon: Daemon, name: str) -> None:
    """Run a sleeper on the overlay, retrying while the host is not (yet) back in the store."""

    def started() -> bool:
        argv = ["run", "-d", "--name", name, "--network", "ov", "--", "sleep", "600"]
        return daemon.cli(*argv, check=False).returncode == 0

    wait_for(started, TTL + EXPIRY_SLACK, f"{daemon} runs {name} on the overlay again")


RECEIVER = """
import socket
server = socket.create_server(("", 5000))
connection, _ = server.accept()
received = 0
while data := connection.recv(1 << 16):
    received += len(data)
print("received", received, flush=True)
"""
SENDER = """
import socket, sys
connection = socket.create_connection((sys.argv[1], 5000), timeout=30)
connection.sendall(bytes(int(sys.argv[2])))
connection.close()
"""


def receiver(daemon: Daemon, name: str) -> None:
    """A container that counts the bytes of one TCP connection on port 5000, then exits."""
    daemon.cli(
        "run", "-d", "--name", name, "--network", "ov", "--", sys.executable, "-c", RECEIVER
    )


def transfer(sender: Daemon, container: str, to: Daemon, name: str, size: int) -> int:
    """Send ``size`` bytes from ``container`` to the receiver ``name``; return what arrived."""
    sender.cli("exec", container, "--", sys.executable, "-c", SENDER, name, str(size), timeout=120)

    def finished() -> bool:
        return "received" in to.cli("logs", name).stdout

    wait_for(finished, 30, f"the receiver {name} finishes", interval=0.1)
    return int(to.cli("logs", name).stdout.split()[-1])


def test_ping_transfer_and_names_across_three_hosts(make_cluster) -> None:
    cluster = make_cluster()
    one, two, three = cluster.daemons
    one.cli("network", "create", "-d", "overlay", "--attachable", "ov")
    sleeper(one, "c1")
    sleeper(two, "c2")
    receiver(three, "c3")

    for daemon in cluster.daemons:
        listing = daemon.cli("network", "ls").stdout
        assert re.search(r"\bov\s+overlay\s+global\b", listing), listing

    # Names resolve through the embedded DNS to containers on the other hosts.
    ping = one.cli("exec", "c1", "--", "ping", "-c", "3", "-i", "0.2", "-W", "2", "c2")
    assert " 0% packet loss" in ping.stdout, ping.stdout
    answer = two.cli("exec", "c2", "--", "dig", "+short", "@127.0.0.11", "c3").stdout.split()
    assert answer == [container_address(three, "c3", "ov")]

    # A 1 MB TCP transfer from host 1 to host 3.
    assert transfer(one, "c1", three, "c3", 1 << 20) == 1 << 20

    # Each host's VXLAN device: one FDB entry per remote MAC, at its host; no flood entry.
    macs = {
        "c1": (container_mac(one, "c1", "ov"), "198.51.100.1"),
        "c2": (container_mac(two, "c2", "ov"), "198.51.100.2"),
        "c3": (container_mac(three, "c3", "ov"), "198.51.100.3"),
    }
    addresses = {
        "c1": container_address(one, "c1", "ov"),
        "c2": container_address(two, "c2", "ov"),
        "c3": container_address(three, "c3", "ov"),
    }
    for daemon, local in ((one, "c1"), (two, "c2"), (three, "c3")):
        entries = fdb_entries(daemon, "ov")
        expected = sorted(value for name, value in macs.items() if name != local)
        assert sorted(entries) == expected, (local, entries)
        assert all(mac != "00:00:00:00:00:00" for mac, _ in entries)
        expected_neighbours = {
            addresses[name]: (macs[name][0], ["PERMANENT"]) for name in macs if name != local
        }
        assert neighbours(daemon, "ov") == expected_neighbours, local

    details = run(["nsenter", f"--net={overlay_netns(one, 'ov')}", "ip", "-d", "link", "show"])
    assert re.search(r"vxlan id 4096 .*dstport 4789 .*nolearning proxy", details.stdout)

    inspect = json.loads(one.cli("network", "inspect", "ov").stdout)[0]
    assert inspect["Scope"] == "global"
    assert [entry["Name"] for entry in inspect["Containers"].values()] == ["c1"]
    assert sorted(peer["IP"] for peer in inspect["Peers"]) == [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
    ]


def log_time(daemon: Daemon, pattern: str) -> float:
    """When the daemon first logged a line matching ``pattern`` (its clock is ours)."""
    for line in daemon.console_log.read_text(errors="replace").splitlines():
        if re.search(pattern, line):
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()
    raise AssertionError(f"no log line matches {pattern!r}:\n{daemon.logs()}")


def test_started_on_one_host_reachable_from_another_within_a_second(make_cluster) -> None:
    cluster = make_cluster(hosts=2)
    one, two = cluster.daemons
    one.cli("network", "create", "-d", "overlay", "--subnet", "10.5.0.0/24", "ov")
    sleeper(one, "ca")
    address, mac = "10.5.0.20", "02:42:0a:05:00:14"

    started = time.time()
    two.cli("run", "-d", "--name", "cb", "--network", "ov", "--ip", address, "--", "sleep", "600")
    wait_for(
        lambda: (
            (mac, "198.51.100.2") in fdb_entries(one, "ov") and address in neighbours(one, "ov")
        ),
        5,
        "host 1 programs the entries of cb",
    )
    ping = one.cli("exec", "ca", "--", "ping", "-c", "1", "-W", "1", address)
    assert " 0% packet loss" in ping.stdout, ping.stdout

    # From the moment host 2 has the container on the overlay to the moment host 1 has
    # programmed its FDB and neighbour entries (both daemons log on the machine's clock).
    connected = log_time(two, r"container cb: connected to overlay network ov")
    programmed = log_time(one, r"cluster: network ov: cb \(10\.5\.0\.20\) on host")
    print(
        f"cb: on the overlay on host 2 {connected - started:.3f} s after 'run' began; "
        f"programmed on host 1 {programmed - connected:.3f} s later"
    )
    assert programmed - connected < REACH_DEADLINE

    # When the container goes, its entries go from the other host.
    two.cli("rm", "-f", "cb")
    wait_for(lambda: fdb_entries(one, "ov") == [], 2, "FDB entry of cb removed on host 1")
    assert address not in neighbours(one, "ov")
    # The last local member's leaving removes the data plane of host 2.
    assert not (two.root / "run" / "overlay").exists() or not any(
        (two.root / "run" / "overlay").iterdir()
    )


def test_containers_created_at_once_on_all_hosts_get_distinct_addresses(make_cluster) -> None:
    cluster = make_cluster()
    cluster.daemons[0].cli("network", "create", "-d", "overlay", "--subnet", "10.9.0.0/24", "ov")
    per_host = 4
    failures: list[str] = []

    def create_all(number: int, daemon: Daemon) -> None:
        for index in range(per_host):
            completed = daemon.cli(
                "create", "--name", f"h{number}c{index}", "--network", "ov", "--", "true",
                check=False,
            )  # fmt: skip
            if completed.returncode != 0:
                failures.append(completed.stderr)

    threads = [
        threading.Thread(target=create_all, args=(number, daemon))
        for number, daemon in enumerate(cluster.daemons)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures

    addresses = [
        container_address(daemon, f"h{number}c{index}", "ov")
        for number, daemon in enumerate(cluster.daemons)
        for index in range(per_host)
    ]
    assert len(set(addresses)) == len(addresses) == 3 * per_host, addresses
    assert all(address.startswith("10.9.0.") for address in addresses)
    claims = [key for key in cluster.etcd.keys() if key.startswith("/nsnet/addresses/")]
    assert len(claims) == 3 * per_host


def test_dead_host_endpoints_vanish_after_the_ttl(make_cluster) -> None:
    cluster = make_cluster()
    one, two, three = cluster.daemons
    one.cli("network", "create", "-d", "overlay", "ov")
    sleeper(one, "c1")
    sleeper(two, "c2")
    sleeper(three, "c3")
    c3_mac = container_mac(three, "c3", "ov")
    wait_for(lambda: len(fdb_entries(one, "ov")) == 2, 2, "host 1 learns both peers")

    # Host 3 dies: its daemon is killed, its containers and namespace go, with no goodbye.
    three.kill9()
    three.close()
    cluster.hosts[2].delete()
    killed = time.monotonic()

    def forgotten() -> bool:
        return all(mac != c3_mac for mac, _ in fdb_entries(one, "ov")) and all(
            mac != c3_mac for mac, _ in fdb_entries(two, "ov")
        )

    wait_for(forgotten, TTL + EXPIRY_SLACK, "host 3's endpoint removed from hosts 1 and 2")
    assert time.monotonic() - killed >= TTL - 1  # the lease, not anything sooner, removed it
    lookup = one.cli("exec", "c1", "--", "dig", "+short", "@127.0.0.11", "c3").stdout
    assert lookup.strip() == ""
    peers = json.loads(one.cli("network", "inspect", "ov").stdout)[0]["Peers"]
    assert sorted(peer["IP"] for peer in peers) == ["198.51.100.1", "198.51.100.2"]
    ping = one.cli("exec", "c1", "--", "ping", "-c", "1", "-W", "2", "c2")
    assert " 0% packet loss" in ping.stdout


def test_large_transfer_over_an_underlay_with_mtu_1400(make_cluster) -> None:
    cluster = make_cluster(hosts=2, mtu=1400)
    one, two = cluster.daemons
    one.cli("network", "create", "-d", "overlay", "ov")
    receiver(two, "server")
    sleeper(one, "client")

    link = json.loads(one.cli("exec", "client", "--", "ip", "-j", "link", "show", "eth0").stdout)
    assert link[0]["mtu"] == 1350  # 1400 - 50 bytes of VXLAN over IPv4

    assert transfer(one, "client", two, "server", 16 << 20) == 16 << 20


def test_outside_and_published_ports_through_the_gateway_bridge(make_cluster) -> None:
    cluster = make_cluster(hosts=2)
    one, _ = cluster.daemons
    one.cli("network", "create", "-d", "overlay", "ov")
    www = Path(one.root) / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from the overlay\n")
    one.cli(
        "run", "-d", "--name", "web", "--network", "ov", "-p", "8080:80",
        "--", "busybox", "httpd", "-f", "-p", "80", "-h", str(www),
    )  # fmt: skip

    routes = one.cli("exec", "web", "--", "ip", "route").stdout
    assert re.search(r"default via \S+ dev eth1", routes), routes
    ping = one.cli("exec", "web", "--", "ping", "-c", "1", "-W", "2", OUTSIDE_ADDRESS)
    assert " 0% packet loss" in ping.stdout

    fetch = (
        "import urllib.request; "
        "print(urllib.request.urlopen('http://198.51.100.1:8080/', timeout=2).read().decode())"
    )

    def served() -> bool:
        fetched = cluster.underlay.outside.run(sys.executable, "-c", fetch, check=False)
        return "hello from the overlay" in fetched.stdout

    wait_for(served, 5, "the published port answers from the outside")


def test_overlay_network_needs_a_cluster_store(daemon: Daemon) -> None:
    completed = daemon.cli("network", "create", "-d", "overlay", "ov", check=False)
    assert completed.returncode != 0
    assert "--cluster-store" in completed.stderr, completed.stderr
    assert "ov" not in daemon.cli("network", "ls").stdout.split()


def test_address_taken_while_cut_off_disconnects_the_container(make_cluster) -> None:
    cluster = make_cluster(hosts=2)
    one, two = cluster.daemons
    one.cli("network", "create", "-d", "overlay", "--subnet", "10.7.0.0/24", "ov")
    sleeper(two, "away", "--ip", "10.7.0.50")
    sleeper(two, "stays")
    stays_address = container_address(two, "stays", "ov")

    # Host 2 is cut off longer than the TTL; meanwhile host 1 takes the address of 'away'.
    cluster.underlay.cut(cluster.hosts[1])
    wait_for(
        lambda: not any(key.endswith("/10.7.0.50") for key in cluster.etcd.keys()),
        TTL + EXPIRY_SLACK,
        "the cut-off host's claims expire",
    )
    sleeper(one, "newcomer", "--ip", "10.7.0.50")
    cluster.underlay.mend(cluster.hosts[1])

    def disconnected() -> bool:
        networks = json.loads(two.cli("inspect", "away").stdout)[0]["NetworkSettings"]
        return "ov" not in networks["Networks"]

    wait_for(disconnected, TTL + EXPIRY_SLACK, "host 2 disconnects 'away' from ov")
    log = (two.console_log.read_text(errors="replace")) + two.logs()
    assert "container away: disconnected from overlay network ov" in log
    # The other container of host 2 registered again and is reachable.
    wait_for(
        lambda: (
            one.cli(
                "exec", "newcomer", "--", "ping", "-c", "1", "-W", "1", stays_address, check=False
            ).returncode
            == 0
        ),
        TTL + EXPIRY_SLACK,
        "host 2's other container is reachable again",
    )
    holders = [value for key, value in cluster.etcd.keys().items() if key.endswith("/10.7.0.50")]
    assert len(holders) == 1 and '"host":"198.51.100.1"' in holders[0]


@pytest.mark.parametrize("how", ["restart", "crash"])
def test_restart_within_the_ttl_keeps_the_endpoints(make_cluster, how: str) -> None:
    cluster, one, two = two_hosts_on_ov(make_cluster, "ca", "cb")
    b_address = container_address(two, "cb", "ov")
    before = fdb_entries(one, "ov")
    plane = overlay_netns(two, "ov")

    if how == "crash":
        two.kill9()  # the containers, the overlay namespace and the lease live on
        two.start()
    else:
        two.restart()
    time.sleep(TTL + 1)  # longer than the lease: only a kept or renewed lease explains entries
    assert fdb_entries(one, "ov") == before
    assert overlay_netns(two, "ov") == plane and plane.exists()
    ping = one.cli("exec", "ca", "--", "ping", "-c", "1", "-W", "2", b_address)
    assert " 0% packet loss" in ping.stdout
    ping = two.cli("exec", "cb", "--", "ping", "-c", "1", "-W", "2", "ca")
    assert " 0% packet loss" in ping.stdout


def test_connect_disconnect_aliases_and_removal_across_hosts(make_cluster) -> None:
    cluster = make_cluster(hosts=2)
    one, two = cluster.daemons
    one.cli("network", "create", "-d", "overlay", "ov")
    sleeper(one, "ca")
    two.cli("run", "-d", "--name", "cb", "--", "sleep", "600")  # on the default bridge
    two.cli("network", "connect", "--alias", "db", "ov", "cb")

    routes = two.cli("exec", "cb", "--", "ip", "route").stdout
    assert re.search(r"default via \S+ dev eth0", routes), routes  # the bridge keeps it
    links = two.cli("exec", "cb", "--", "ip", "-br", "link").stdout
    assert re.search(r"^eth1@", links, re.MULTILINE) and re.search(r"^eth2@", links, re.MULTILINE)
    answer = one.cli("exec", "ca", "--", "dig", "+short", "@127.0.0.11", "db").stdout.split()
    assert answer == [container_address(two, "cb", "ov")]

    refused = one.cli("network", "rm", "ov", check=False)
    assert refused.returncode != 0 and "active endpoints" in refused.stderr, refused.stderr
    one.cli("rm", "-f", "ca")
    refused = one.cli("network", "rm", "ov", check=False)
    assert "cb on 198.51.100.2" in refused.stderr, refused.stderr

    two.cli("network", "disconnect", "ov", "cb")
    networks = json.loads(two.cli("inspect", "cb").stdout)[0]["NetworkSettings"]["Networks"]
    assert sorted(networks) == ["bridge"]  # the gateway bridge went with the overlay
    assert not any(key.startswith("/nsnet/endpoints/") for key in cluster.etcd.keys())
    one.cli("network", "rm", "ov")
    wait_for(lambda: "ov" not in two.cli("network", "ls").stdout.split(), 2, "host 2 forgets ov")
    assert not any(key.startswith("/nsnet/network") for key in cluster.etcd.keys())


def test_a_store_outage_refuses_new_endpoints_but_not_traffic_or_removal(make_cluster) -> None:
    cluster, one, two = two_hosts_on_ov(make_cluster, "c1", "c2")
    c1_mac = container_mac(one, "c1", "ov")

    cluster.etcd.stop()
    refused = one.cli("run", "-d", "--name", "c3", "--network", "ov", "--", "true", check=False)
    assert refused.returncode != 0
    assert refused.stderr.startswith(
        "Error response from daemon: cannot connect container 'c3' to network 'ov': cannot read "
        "the network's addresses: cluster store etcd://198.51.100.100:2379: it does not answer"
    ), refused.stderr
    ping = one.cli("exec", "c1", "--", "ping", "-c", "1", "-W", "2", "c2")
    assert " 0% packet loss" in ping.stdout  # the data plane does not need the store
    one.cli("rm", "-f", "c1")  # its release waits for the store

    cluster.etcd.start()
    wait_for(
        lambda: all(mac != c1_mac for mac, _ in fdb_entries(two, "ov")),
        TTL + EXPIRY_SLACK,
        "host 2 forgets c1 once the store is back",
    )
    sleeper_once_the_store_answers(one, "c3")
    ping = two.cli("exec", "c2", "--", "ping", "-c", "1", "-W", "2", "c3")
    assert " 0% packet loss" in ping.stdout


def test_a_host_starts_while_the_store_is_down_and_joins_when_it_answers(make_cluster) -> None:
    cluster, one, two = two_hosts_on_ov(make_cluster, "ca", "cb")
    b_address = container_address(two, "cb", "ov")

    cluster.etcd.stop()
    two.restart()  # as dockerd, it starts without its store
    info = two.cli("info")
    assert "  Reachable: no\n" in info.stdout, info.stdout
    assert "cluster store etcd://198.51.100.100:2379 does not answer" in info.stderr, info.stderr
    refused = two.cli("run", "-d", "--name", "cc", "--network", "ov", "--", "true", check=False)
    assert refused.returncode != 0 and "cluster store" in refused.stderr, refused.stderr

    cluster.etcd.start()
    sleeper_once_the_store_answers(two, "cc")
    info = two.cli("info")
    assert "  Reachable: yes\n" in info.stdout and "Lease: none" not in info.stdout, info.stdout
    c_address = container_address(two, "cc", "ov")
    assert c_address != b_address
    for name, address in (("cb", b_address), ("cc", c_address)):
        wait_for(
            lambda address=address: any(ip == address for ip in neighbours(one, "ov")),
            TTL + EXPIRY_SLACK,
            f"host 1 learns {name} again",
        )
        ping = one.cli("exec", "ca", "--", "ping", "-c", "1", "-W", "2", name)
        assert " 0% packet loss" in ping.stdout, ping.stdout


def test_an_internal_overlay_has_no_way_out(make_cluster) -> None:
    cluster = make_cluster(hosts=2)
    one, two = cluster.daemons
    one.cli("network", "create", "-d", "overlay", "--internal", "--subnet", "10.73.0.0/24", "ov")
    refused = one.cli("run", "-d", "-p", "8090:80", "--network", "ov", "--", "true", check=False)
    assert refused.returncode != 0 and "internal overlay network 'ov'" in refused.stderr
    sleeper(one, "ia")
    sleeper(two, "ib")

    networks = json.loads(one.cli("inspect", "ia").stdout)[0]["NetworkSettings"]["Networks"]
    assert sorted(networks) == ["ov"]  # no gateway bridge
    assert "default" not in one.cli("exec", "ia", "--", "ip", "route").stdout
    ping = one.cli("exec", "ia", "--", "ping", "-c", "1", "-W", "2", "ib")
    assert " 0% packet loss" in ping.stdout, ping.stdout  # inside the overlay, across hosts
    out = one.cli("exec", "ia", "--", "ping", "-c", "1", "-W", "1", OUTSIDE_ADDRESS, check=False)
    assert out.returncode != 0 and "Network is unreachable" in out.stderr, out.stderr


def test_a_host_back_after_its_network_was_removed_leaves_it(make_cluster) -> None:
    cluster = make_cluster(hosts=2)
    one, two = cluster.daemons
    vni = "com.docker.network.driver.overlay.vxlanid_list=5005"
    same = ["--subnet", "10.81.0.0/24", "-o", vni]
    one.cli("network", "create", "-d", "overlay", *same, "ov")
    sleeper(two, "z2")  # 10.81.0.2
    two.kill9()

    def removed() -> bool:
        return one.cli("network", "rm", "ov", check=False).returncode == 0

    wait_for(removed, TTL + EXPIRY_SLACK, "ov can be removed once host 2's lease ran out")
    # The same VNI and subnet again: host 2's stale device and address must not stand in the way.
    one.cli("network", "create", "-d", "overlay", *same, "zy")
    one.cli("run", "-d", "--name", "y1", "--network", "zy", "--", "sleep", "600")
    two.start()

    assert "ov" not in two.cli("network", "ls").stdout.split()
    networks = json.loads(two.cli("inspect", "z2").stdout)[0]["NetworkSettings"]["Networks"]
    assert networks == {}, networks
    assert "disconnected from overlay network ov" in two.logs()
    two.cli("run", "-d", "--name", "y2", "--network", "zy", "--", "sleep", "600")
    ping = two.cli("exec", "y2", "--", "ping", "-c", "1", "-W", "2", "y1")
    assert " 0% packet loss" in ping.stdout, ping.stdout


def test_a_stopped_container_stops_resolving_on_the_other_hosts(make_cluster) -> None:
    cluster, one, two = two_hosts_on_ov(make_cluster, "ca", "cb")
    b_address = container_address(two, "cb", "ov")

    def answer() -> list[str]:
        return one.cli("exec", "ca", "--", "dig", "+short", "@127.0.0.11", "cb").stdout.split()

    wait_for(lambda: answer() == [b_address], REACH_DEADLINE, "cb resolves on host 1")
    two.cli("stop", "-t", "1", "cb")
    wait_for(lambda: answer() == [], REACH_DEADLINE, "cb stops resolving on host 1")
    two.cli("start", "cb")
    wait_for(lambda: answer() == [b_address], REACH_DEADLINE, "cb resolves again on host 1")
