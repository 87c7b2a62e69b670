"""A throwaway cluster lab: hosts on an underlay, an etcd, and nsnetd on every host.

Like ``nsnet.lab.Lab``, but with several machines: a "fabric" namespace holds a bridge that
plays the switch between them; each host namespace has an ``eth0`` on it (198.51.100.1, .2,
...; documentation addresses only) and runs its own nsnetd as a member of the cluster; etcd
(Debian's ``etcd-server``) runs in a namespace of its own at 198.51.100.100. Nothing touches
the machine's own namespace, and leaving the ``with`` block removes every container, process,
mount and namespace the lab made.

    with ClusterLab(hosts=2) as lab:
        lab.show(1, "network", "create", "-d", "overlay", "ov")
        lab.show(2, "run", "-d", "--network", "ov", "--name", "c2", "--", "sleep", "infinity")
"""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from ipaddress import IPv4Address
from pathlib import Path

from nsnet.kernel import namespace
from nsnet.kernel.netlink import Netlink
from nsnet.lab import LAB_DNS_SERVER, LabError, _echo, _mounts_under, _program

ETCD_PROGRAM = "/usr/bin/etcd"
FABRIC_BRIDGE = "fabric0"
PREFIXLEN = 24
ETCD_ADDRESS = IPv4Address("198.51.100.100")
ETCD_PORT = 2379
START_TIMEOUT = 20.0
LAB_OWNER = "0" * 64  # the alias owner of the lab's fabric bridge (not a network of nsnet's)


def host_address(number: int) -> IPv4Address:
    """The underlay address of host ``number`` (1, 2, ...)."""
    return IPv4Address(f"198.51.100.{number}")


class ClusterLab:
    def __init__(self, hosts: int = 2, ttl: int = 15, mtu: int = 1500) -> None:
        """A lab of ``hosts`` hosts, each nsnetd with a lease TTL of ``ttl`` seconds.

        ``mtu`` is the MTU of every underlay link (the overlay's follows it). Only the lab's
        directory under /run is made here; entering the ``with`` block builds the rest.
        """
        self.name = "nsnet-cluster-" + secrets.token_hex(3)
        self.directory = Path(tempfile.mkdtemp(prefix=self.name + "-", dir="/run"))
        self.count = hosts
        self.ttl = ttl
        self.mtu = mtu
        self.fabric_netns = self.directory / "fabric.net"
        self.etcd_netns = self.directory / "etcd.net"
        self.processes: list[subprocess.Popen] = []
        self.daemons: dict[int, subprocess.Popen] = {}

    # Set-up and teardown

    def __enter__(self) -> "ClusterLab":
        try:
            self._make_underlay()
            self._start_etcd()
            for number in range(1, self.count + 1):
                self._start_daemon(number)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def host_netns(self, number: int) -> Path:
        """The network namespace file of host ``number`` (1, 2, ...)."""
        return self.directory / f"host{number}.net"

    def root(self, number: int) -> Path:
        """Host ``number``'s NSNET_ROOT: its state, socket and daemon log."""
        return self.directory / f"root{number}"

    def _make_underlay(self) -> None:
        namespace.create(self.fabric_netns, None, None)
        fabric = Netlink.open(self.fabric_netns)
        try:
            fabric.set_up("lo")
            bridge_index = fabric.add_bridge(FABRIC_BRIDGE, self.mtu, LAB_OWNER)
            fabric.set_up(bridge_index)
            members = [(self.etcd_netns, ETCD_ADDRESS)] + [
                (self.host_netns(number), host_address(number))
                for number in range(1, self.count + 1)
            ]
            for position, (path, address) in enumerate(members):
                namespace.create(path, None, None)
                port = f"port{position}"
                fabric.add_veth_pair(port, "eth0", str(path))
                fabric.attach_to_bridge(port, bridge_index)
                member = Netlink.open(path)
                try:
                    member.set_up("lo")
                    index = member.link_index("eth0")
                    member.add_address(index, address, PREFIXLEN)
                    member.set_up(index)
                finally:
                    member.close()
        finally:
            fabric.close()
        if self.mtu != 1500:
            self._set_mtus()

    def _set_mtus(self) -> None:
        for path in [self.fabric_netns, self.etcd_netns] + [
            self.host_netns(number) for number in range(1, self.count + 1)
        ]:
            handle = Netlink.open(path)
            try:
                for link in handle.links():
                    if link["ifname"] != "lo":
                        handle.set_mtu(link["index"], self.mtu)
            finally:
                handle.close()

    def _start_etcd(self) -> None:
        if not os.access(ETCD_PROGRAM, os.X_OK):
            raise LabError(f"{ETCD_PROGRAM} is missing: install Debian's etcd-server")
        url = f"http://{ETCD_ADDRESS}:{ETCD_PORT}"
        log = open(self.directory / "etcd.log", "ab")
        process = subprocess.Popen(
            [
                "nsenter",
                f"--net={self.etcd_netns}",
                "--",
                ETCD_PROGRAM,
                "--name",
                "lab",
                "--data-dir",
                str(self.directory / "etcd"),
                "--listen-client-urls",
                url,
                "--advertise-client-urls",
                url,
                "--listen-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-cluster",
                "lab=http://127.0.0.1:2380",
            ],  # fmt: skip
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self.processes.append(process)

        # The daemons need etcd at start: wait until it accepts connections on the fabric.
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LabError(f"etcd exited with {process.returncode}")
            with namespace.entered(self.etcd_netns), contextlib.suppress(OSError):
                socket.create_connection((str(ETCD_ADDRESS), ETCD_PORT), timeout=1).close()
                return
            time.sleep(0.1)
        raise LabError(f"etcd did not answer within {START_TIMEOUT} s")

    def _start_daemon(self, number: int) -> None:
        root = self.root(number)
        root.mkdir()
        log = open(root / "nsnetd.log", "ab")
        flags = [
            "--dns", LAB_DNS_SERVER,
            "--cluster-store", f"etcd://{ETCD_ADDRESS}:{ETCD_PORT}",
            "--advertise-addr", str(host_address(number)),
            "--cluster-ttl", str(self.ttl),
        ]  # fmt: skip
        process = subprocess.Popen(
            self._in(self.host_netns(number), _program("nsnetd", "nsnet.daemon") + flags),
            env=self._env(number),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self.daemons[number] = process
        socket_path = root / "run" / "nsnetd.sock"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if socket_path.exists():
                with contextlib.suppress(LabError):
                    self.nsnet(number, "version")
                    return
            time.sleep(0.05)
        raise LabError(f"nsnetd on host {number} did not start:\n{self.daemon_log(number)}")

    def daemon_log(self, number: int) -> str:
        """The text of host ``number``'s daemon log (empty before it starts)."""
        path = self.root(number) / "nsnetd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        """Remove everything the lab made, going on past failures."""
        for number, daemon in self.daemons.items():
            if daemon.poll() is None:
                with contextlib.suppress(LabError):
                    ids = self.nsnet(number, "ps", "-aq").split()
                    if ids:
                        self.nsnet(number, "rm", "-f", *ids)
                daemon.send_signal(signal.SIGTERM)
        for daemon in self.daemons.values():
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        self._kill_processes_inside()
        for mount_point in reversed(_mounts_under(self.directory)):
            with contextlib.suppress(OSError):
                namespace.umount(mount_point)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _kill_processes_inside(self) -> None:
        inodes = set()
        for path in self.directory.glob("**/*"):
            if path.is_file() and namespace.is_mounted_namespace(path):
                with contextlib.suppress(OSError):
                    inodes.add(namespace.inode(path))
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if namespace.inode(entry / "ns" / "net") in inodes:
                    os.kill(int(entry.name), signal.SIGKILL)

    # Running things

    def _env(self, number: int) -> dict[str, str]:
        env = dict(os.environ, NSNET_ROOT=str(self.root(number)))
        package_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [package_parent, os.environ.get("PYTHONPATH")])
        )
        return env

    @staticmethod
    def _in(netns: Path, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net={netns}", "--", *argv]

    def run(self, netns: Path, argv: list[str], number: int = 1, check: bool = True) -> str:
        """Run ``argv`` inside ``netns`` and return its standard output."""
        result = subprocess.run(
            self._in(netns, argv),
            env=self._env(number),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise LabError(
                f"'{' '.join(argv)}' failed with exit code {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result.stdout

    def nsnet(self, number: int, *args: str, check: bool = True) -> str:
        """Run the nsnet CLI against host ``number``'s daemon."""
        return self.run(
            self.host_netns(number), _program("nsnet", "nsnet.cli") + list(args), number, check
        )

    def host(self, number: int, *argv: str, check: bool = True) -> str:
        """Run ``argv`` in host ``number``'s namespace and return its standard output."""
        return self.run(self.host_netns(number), list(argv), number, check)

    def fabric(self, *argv: str, check: bool = True) -> str:
        """Run ``argv`` in the fabric namespace (the underlay's switch); its output."""
        return self.run(self.fabric_netns, list(argv), check=check)

    def popen_fabric(self, argv: list[str]) -> subprocess.Popen:
        """Start ``argv`` in the fabric namespace (a capture); it is killed at close."""
        process = subprocess.Popen(
            self._in(self.fabric_netns, argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append(process)
        return process

    # The same, printed as terminal sessions

    def show(self, number: int, *args: str) -> str:
        """Run the nsnet CLI on host ``number``, printing command and output; return the output."""
        return _echo(f"host{number}", "nsnet " + " ".join(args), self.nsnet(number, *args))

    def show_host(self, number: int, *argv: str) -> str:
        """Run ``argv`` on host ``number``, printing command and output; return the output."""
        return _echo(f"host{number}", " ".join(argv), self.host(number, *argv))
