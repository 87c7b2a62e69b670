"""The overlay driver's data plane on the kernel, without etcd: two hosts on an underlay.

Each host is a namespace on a fabric bridge (tests/support/etcd.py's Underlay, no etcd); an
``OverlayDriver`` runs in a worker thread that entered the host's namespace for good, as the
daemon's engine thread would be. Remote endpoints are handed to the driver directly, as the
cluster agent does from its watch. Checked: where the VXLAN device and its socket live, its
settings, the FDB and neighbour entries (one per remote endpoint, no flood entry), traffic
between the hosts, the MTU from the underlay, and that everything goes with the last member.
"""

import contextlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from nsnet.cluster.config import ClusterConfig
from nsnet.cluster.records import EndpointRecord
from nsnet.drivers.overlay import OverlayDriver
from nsnet.kernel import namespace
from nsnet.kernel.netlink import Netlink
from nsnet.models import Endpoint, IpamConfig, Network
from tests.support.etcd import Underlay
from tests.support.netns import NamespacePool, run

NETWORK_ID = "ab" * 32
VNI = 4242


class Host:
    """An OverlayDriver living in a worker thread inside one host namespace."""

    def __init__(self, netns, address: str, directory: Path) -> None:
        self.netns = netns
        self.address = address
        self.directory = directory
        self.sandboxes: list[Path] = []
        self.executor = ThreadPoolExecutor(max_workers=1, initializer=self._enter)
        self.driver: OverlayDriver = self.call(self._make_driver)

    def _enter(self) -> None:
        fd = os.open(self.netns.path, os.O_RDONLY)
        try:
            namespace.setns(fd, namespace.CLONE_NEWNET)
        finally:
            os.close(fd)

    def call(self, function, *args):
        return self.executor.submit(function, *args).result(timeout=60)

    def _make_driver(self) -> OverlayDriver:
        self.handles: dict[str, Netlink] = {}
        self.host = Netlink.open()
        config = ClusterConfig("198.51.100.100", 2379, IPv4Address(self.address), 5, "h")
        driver = OverlayDriver(self.host, self._sandbox, self.directory / "overlay", config)
        driver.prepare()
        return driver

    def _sandbox(self, path: str) -> Netlink:
        if path not in self.handles:
            self.handles[path] = Netlink.open(path)
        return self.handles[path]

    def sandbox(self, name: str) -> Path:
        path = self.directory / name
        namespace.create(path, None, None)
        self.sandboxes.append(path)
        return path

    def plane(self) -> Path:
        return self.directory / "overlay" / NETWORK_ID

    def close(self) -> None:
        def shut() -> None:
            self.driver.delete(network())
            self.driver.close()
            for handle in self.handles.values():
                handle.close()
            self.host.close()

        try:
            self.call(shut)
        finally:
            self.executor.shutdown()
            for path in self.sandboxes:
                namespace.remove(path)
            with contextlib.suppress(OSError):
                namespace.umount(str(self.directory / "overlay"))


def network(mtu: str | None = None) -> Network:
    options = {"com.docker.network.driver.overlay.vxlanid_list": str(VNI)}
    if mtu:
        options["com.docker.network.driver.mtu"] = mtu
    return Network(
        id=NETWORK_ID, name="ov", driver="overlay", created="", scope="global",
        ipam=[IpamConfig(IPv4Network("10.3.0.0/24"), IPv4Address("10.3.0.1"))],
        options=options,
    )  # fmt: skip


def endpoint(number: int) -> Endpoint:
    address = IPv4Address(f"10.3.0.{number}")
    return Endpoint(
        id=f"{number:064x}", network_id=NETWORK_ID, container_id=f"{number:064x}",
        container_ifname="eth0", host_ifname=f"veth{number:07x}",
        mac_address=f"02:42:0a:03:00:{number:02x}", address=address, prefixlen=24, gateway=None,
    )  # fmt: skip


def record(item: Endpoint, host: Host) -> EndpointRecord:
    return EndpointRecord(
        NETWORK_ID, "ov", item.id, item.container_id, f"c{item.address.packed[-1]}",
        item.address, 24, item.mac_address, IPv4Address(host.address), "h",
    )  # fmt: skip


@pytest.fixture
def hosts(tmp_path: Path, request):
    mtu = getattr(request, "param", 1500)
    with NamespacePool() as pool:
        underlay = Underlay(pool, mtu=mtu)
        made = []
        try:
            for number in (1, 2):
                netns = underlay.add_host()
                directory = tmp_path / f"host{number}"
                directory.mkdir()
                made.append(Host(netns, underlay.address_of(netns), directory))
            yield made
        finally:
            for host in made:
                with contextlib.suppress(Exception):
                    host.close()


def fdb(path: Path) -> list[dict]:
    output = run(["nsenter", f"--net={path}", "bridge", "-j", "fdb", "show", "dev", "vxlan0"])
    return [entry for entry in json.loads(output.stdout) if "dst" in entry]


def neighbours(path: Path) -> list[dict]:
    output = run(["nsenter", f"--net={path}", "ip", "-j", "neigh", "show", "dev", "vxlan0"])
    return json.loads(output.stdout)


def test_two_hosts_reach_each_other_through_vxlan(hosts) -> None:
    one, two = hosts
    first, second = endpoint(2), endpoint(3)
    one.call(one.driver.remote_put, record(second, two))  # known before the plane exists
    sandbox_one, sandbox_two = one.sandbox("c2"), two.sandbox("c3")
    one.call(one.driver.join, network(), first, str(sandbox_one), False)
    two.call(two.driver.join, network(), second, str(sandbox_two), False)
    two.call(two.driver.remote_put, record(first, one))  # learned after

    # The device sits in the overlay's namespace; its UDP socket on the host's underlay.
    details = run(["nsenter", f"--net={one.plane()}", "ip", "-d", "link", "show", "vxlan0"])
    assert re.search(rf"vxlan id {VNI} local {one.address} .*dstport 4789 ", details.stdout)
    assert "nolearning proxy" in details.stdout
    assert "master br0" in details.stdout
    sockets = one.netns.run("ss", "-Hlun", "sport", "= :4789").stdout
    assert ":4789" in sockets, sockets
    assert run(["nsenter", f"--net={one.plane()}", "ss", "-Hlun"]).stdout.strip() == ""
    assert "vxlan0" not in one.netns.run("ip", "link").stdout

    for host, remote, owner in ((one, second, two), (two, first, one)):
        entries = fdb(host.plane())
        assert [(entry["mac"], entry["dst"]) for entry in entries] == [
            (remote.mac_address, owner.address)
        ]
        assert all(entry["mac"] != "00:00:00:00:00:00" for entry in entries)
        assert [(entry["dst"], entry["lladdr"], entry["state"]) for entry in neighbours(
            host.plane()
        )] == [(str(remote.address), remote.mac_address, ["PERMANENT"])]  # fmt: skip

    ping = run(["nsenter", f"--net={sandbox_one}", "ping", "-c", "2", "-W", "2", "10.3.0.3"])
    assert " 0% packet loss" in ping.stdout

    # The remote endpoint goes: so do its entries, at once.
    one.call(one.driver.remote_delete, NETWORK_ID, second.id)
    assert fdb(one.plane()) == []
    assert neighbours(one.plane()) == []
    lost = run(["nsenter", f"--net={sandbox_one}", "ping", "-c", "1", "-W", "1", "10.3.0.3"],
               check=False)  # fmt: skip
    assert lost.returncode != 0

    # The last member leaving takes the whole data plane with it.
    one.call(one.driver.leave, network(), first, str(sandbox_one))
    assert not one.plane().exists()
    assert "eth0" not in run(["nsenter", f"--net={sandbox_one}", "ip", "link"]).stdout
    assert one.netns.run("ss", "-Hlun", "sport", "= :4789").stdout.strip() == ""


@pytest.mark.parametrize("hosts", [1400], indirect=True)
def test_mtu_is_the_underlays_minus_50(hosts) -> None:
    one, _ = hosts
    assert one.call(one.driver.mtu, network()) == 1350
    assert one.call(one.driver.mtu, network(mtu="1300")) == 1300
    sandbox = one.sandbox("c2")
    one.call(one.driver.join, network(), endpoint(2), str(sandbox), False)
    for path, ifname in ((sandbox, "eth0"), (one.plane(), "vxlan0"), (one.plane(), "br0")):
        link = run(["nsenter", f"--net={path}", "ip", "-j", "link", "show", ifname]).stdout
        assert json.loads(link)[0]["mtu"] == 1350, (path, ifname)
    one.call(one.driver.leave, network(), endpoint(2), str(sandbox))


def test_a_restarted_driver_adopts_the_plane_and_drops_stale_entries(hosts) -> None:
    one, two = hosts
    first, stale, current = endpoint(2), endpoint(3), endpoint(4)
    sandbox = one.sandbox("c2")
    one.call(one.driver.join, network(), first, str(sandbox), False)
    one.call(one.driver.remote_put, record(stale, two))
    one.call(one.driver.remote_put, record(current, two))

    # A new driver (a restarted daemon) whose view no longer has the stale endpoint.
    def restart() -> OverlayDriver:
        one.driver.close()
        one.driver = one._make_driver()
        one.driver.remote_put(record(current, two))
        one.driver.reconcile({NETWORK_ID: network()}, {NETWORK_ID: {first.id}})
        return one.driver

    one.call(restart)
    assert [entry["mac"] for entry in fdb(one.plane())] == [current.mac_address]
    assert [entry["dst"] for entry in neighbours(one.plane())] == [str(current.address)]
    assert one.call(one.driver.endpoint_present, network(), first)

    # A plane without members is removed by reconcile.
    one.call(one.driver.reconcile, {NETWORK_ID: network()}, {})
    assert not one.plane().exists()
