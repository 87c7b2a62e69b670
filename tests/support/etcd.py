"""A cluster test bed: an underlay fabric, a real etcd on it, host namespaces with nsnetd.

``Underlay(pool)`` makes a "fabric" namespace holding a bridge (``fabric0``) that stands in for
the switch between machines; ``add_host()`` plugs a new host namespace into it with an address
in 198.51.100.0/24 (``eth0``), and ``outside`` is one more namespace on the fabric, at
198.51.100.254, that every host uses as its default route (the "internet"). The underlay's MTU
is a parameter, so a test can make the path between hosts smaller than 1500.

``Etcd(underlay, data_dir)`` runs Debian's ``etcd`` (``/usr/bin/etcd``, package etcd-server)
in a namespace of its own on the fabric, at 198.51.100.100:2379, with its data in a temporary
directory; etcd never runs in the machine's own namespace. ``etcd.call(function)`` runs
``function(client)`` with an etcd3gw client whose sockets are opened inside the fabric, which is
how a test looks at the keys.

``Cluster`` puts it together: hosts on an underlay, an etcd, and nsnetd on every host as a
member of the cluster (``cluster_factory`` makes them for a test and removes them all);
``fdb_entries`` and ``neighbours`` read a host's VXLAN device in an overlay's namespace.
"""

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nsnet.kernel import namespace
from tests.support.daemon import Daemon
from tests.support.netns import Namespace, NamespacePool, run

ETCD_PROGRAM = "/usr/bin/etcd"
FABRIC_BRIDGE = "fabric0"
UNDERLAY_PREFIX = "198.51.100"
UNDERLAY_PREFIXLEN = 24
ETCD_ADDRESS = f"{UNDERLAY_PREFIX}.100"
OUTSIDE_ADDRESS = f"{UNDERLAY_PREFIX}.254"
ETCD_PORT = 2379
ETCD_START_TIMEOUT = 20.0


def etcd_available() -> bool:
    """Whether Debian's etcd server is installed."""
    return os.access(ETCD_PROGRAM, os.X_OK)


class Underlay:
    """A fabric bridge in a namespace of its own, with hosts and an outside plugged in."""

    def __init__(self, pool: NamespacePool, mtu: int = 1500) -> None:
        self.pool = pool
        self.mtu = mtu
        self.fabric: Namespace = pool.create("fabric")
        self.fabric.run("ip", "link", "add", FABRIC_BRIDGE, "mtu", str(mtu), "type", "bridge")
        self.fabric.run("ip", "link", "set", FABRIC_BRIDGE, "up")
        self._ports = 0
        self.hosts: list[Namespace] = []
        self.addresses: dict[str, str] = {}  # namespace name -> underlay address
        self.outside = self.plug(pool.create("outside"), OUTSIDE_ADDRESS, default_route=False)

    def plug(self, netns: Namespace, address: str, default_route: bool = True) -> Namespace:
        """Give ``netns`` an ``eth0`` with ``address`` on the fabric (and a default route)."""
        self._ports += 1
        port = f"port{self._ports}"
        # Made inside the fabric with the peer sent straight to the host: nothing appears in
        # the machine's own namespace.
        self.fabric.run(
            "ip", "link", "add", port, "mtu", str(self.mtu), "type", "veth",
            "peer", "name", "eth0", "mtu", str(self.mtu), "netns", netns.name,
        )  # fmt: skip
        self.fabric.run("ip", "link", "set", port, "master", FABRIC_BRIDGE, "up")
        netns.run("ip", "addr", "add", f"{address}/{UNDERLAY_PREFIXLEN}", "dev", "eth0")
        netns.run("ip", "link", "set", "eth0", "up")
        if default_route:
            netns.run("ip", "route", "add", "default", "via", OUTSIDE_ADDRESS)
        self.addresses[netns.name] = address
        return netns

    def add_host(self) -> Namespace:
        """A new host namespace on the fabric: 198.51.100.1, .2, ... in order."""
        netns = self.pool.create("host")
        self.plug(netns, f"{UNDERLAY_PREFIX}.{len(self.hosts) + 1}")
        self.hosts.append(netns)
        return netns

    def address_of(self, netns: Namespace) -> str:
        return self.addresses[netns.name]

    def port_of(self, netns: Namespace) -> str:
        """The fabric-side port of a namespace (set it down to cut the namespace off)."""
        names = list(self.addresses)
        return f"port{names.index(netns.name) + 1}"

    def cut(self, netns: Namespace) -> None:
        """Partition ``netns`` from the fabric (its port goes down)."""
        self.fabric.run("ip", "link", "set", self.port_of(netns), "down")

    def mend(self, netns: Namespace) -> None:
        self.fabric.run("ip", "link", "set", self.port_of(netns), "up")


class Etcd:
    """etcd 3.4 in its own namespace on the underlay; ``close()`` stops it and removes its data."""

    def __init__(self, underlay: Underlay, data_dir: Path) -> None:
        self.underlay = underlay
        self.data_dir = Path(data_dir)
        self.netns = underlay.plug(underlay.pool.create("etcd"), ETCD_ADDRESS)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The cluster store URL as nsnetd takes it (``--cluster-store``)."""
        return f"etcd://{ETCD_ADDRESS}:{ETCD_PORT}"

    def __enter__(self) -> "Etcd":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> "Etcd":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        client_url = f"http://{ETCD_ADDRESS}:{ETCD_PORT}"
        with open(self.log_path, "ab") as log:
            self.process = self.netns.popen(
                ETCD_PROGRAM,
                "--name", "nsnt",
                "--data-dir", str(self.data_dir),
                "--listen-client-urls", client_url,
                "--advertise-client-urls", client_url,
                "--listen-peer-urls", "http://127.0.0.1:2380",
                "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                "--initial-cluster", "nsnt=http://127.0.0.1:2380",
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + ETCD_START_TIMEOUT
        problem = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"etcd exited with {self.process.returncode}:\n{self.log()}")
            try:
                self.call(lambda client: client.status())
                return self
            except Exception as error:  # any failure means: not ready yet
                problem = str(error)
            time.sleep(0.1)
        raise AssertionError(f"etcd did not answer within {ETCD_START_TIMEOUT} s: {problem}")

    def log(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])
        except OSError:
            return "(no log)"

    def call(self, function: Callable[[Any], Any]) -> Any:
        """``function(client)`` with an etcd3gw client whose sockets live in the fabric."""
        import etcd3gw

        with namespace.entered(self.netns.path):
            client = etcd3gw.Etcd3Client(
                host=ETCD_ADDRESS, port=ETCD_PORT, api_path="/v3/", timeout=5
            )
            try:
                return function(client)
            finally:
                client.session.close()

    def keys(self, prefix: str = "/nsnet/") -> dict[str, str]:
        """Every key under ``prefix`` with its value, as text."""
        pairs = self.call(lambda client: client.get_prefix(prefix))
        return {meta["key"].decode(): value.decode() for value, meta in pairs}

    def stop(self) -> None:
        """Kill etcd (an outage); its data stays, so ``start()`` brings the same store back."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


# Clusters of nsnetd hosts (the overlay's end-to-end tests)


class Cluster:
    """Hosts on an underlay with an etcd, each running nsnetd as a member of the cluster."""

    def __init__(
        self, pool: NamespacePool, tmp_path: Path, hosts: int, mtu: int, ttl: int
    ) -> None:
        self.ttl = ttl
        self.underlay = Underlay(pool, mtu=mtu)
        self.hosts = [self.underlay.add_host() for _ in range(hosts)]
        self.etcd = Etcd(self.underlay, tmp_path / "etcd").start()
        self.daemons: list[Daemon] = []
        for number, host in enumerate(self.hosts):
            daemon = Daemon(host, tmp_path / f"node{number}", args=self.flags(host))
            self.daemons.append(daemon)
            daemon.start()

    def flags(self, host) -> list[str]:
        return [
            "--cluster-store", self.etcd.url,
            "--advertise-addr", self.underlay.address_of(host),
            "--cluster-ttl", str(self.ttl),
        ]  # fmt: skip

    def close(self) -> None:
        problems = []
        for daemon in self.daemons:
            try:
                daemon.close()
            except AssertionError as error:
                problems.append(str(error))
        self.etcd.close()
        if problems:
            raise AssertionError("\n".join(problems))


def network_id(daemon: Daemon, name: str) -> str:
    return json.loads(daemon.cli("network", "inspect", name).stdout)[0]["Id"]


def overlay_netns(daemon: Daemon, name: str) -> Path:
    return daemon.root / "run" / "overlay" / network_id(daemon, name)


def fdb_entries(daemon: Daemon, name: str) -> list[tuple[str, str]]:
    """(MAC, destination) of the VXLAN device's own entries ("self", with a remote)."""
    path = overlay_netns(daemon, name)
    if not path.exists():
        return []
    output = run(["nsenter", f"--net={path}", "bridge", "-j", "fdb", "show", "dev", "vxlan0"])
    return [(entry["mac"], entry["dst"]) for entry in json.loads(output.stdout) if "dst" in entry]


def neighbours(daemon: Daemon, name: str) -> dict[str, tuple[str, list[str]]]:
    path = overlay_netns(daemon, name)
    if not path.exists():
        return {}
    output = run(["nsenter", f"--net={path}", "ip", "-j", "neigh", "show", "dev", "vxlan0"])
    return {
        entry["dst"]: (entry.get("lladdr", ""), entry.get("state", []))
        for entry in json.loads(output.stdout)
    }


@contextlib.contextmanager
def cluster_factory(tmp_path: Path, ttl: int) -> Iterator[Callable[..., "Cluster"]]:
    """``make(hosts=3, mtu=1500)`` builds a cluster; every one made is removed at the end."""
    made: list[tuple[Cluster, NamespacePool]] = []

    def make(hosts: int = 3, mtu: int = 1500) -> Cluster:
        pool = NamespacePool()
        try:
            cluster = Cluster(pool, tmp_path, hosts, mtu, ttl)
        except BaseException:
            pool.close()
            raise
        made.append((cluster, pool))
        return cluster

    try:
        yield make
    finally:
        for cluster, pool in made:
            try:
                cluster.close()
            finally:
                pool.close()
