"""A throwaway lab: a "host" network namespace running nsnetd, and an "outside" one.

The lab is how the demo and the scenario scripts under ``examples/`` run without touching the
machine's own network: the host namespace plays the machine (an uplink 192.0.2.1/24 and a
default route), the outside namespace plays the internet (192.0.2.100/24, documentation
addresses only). nsnetd runs inside the host namespace with ``nsenter --net`` and its own
``NSNET_ROOT``; leaving the ``with`` block removes every container, process, mount and
namespace the lab made.

    with Lab() as lab:
        lab.nsnet("run", "-d", "--name", "web", "--", "busybox", "httpd", "-f")
        print(lab.nsnet("network", "inspect", "bridge"))
"""

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Address
from pathlib import Path

from nsnet.kernel import namespace
from nsnet.kernel.netlink import Netlink

HOST_UPLINK = "uplink0"
HOST_ADDRESS = IPv4Address("192.0.2.1")
OUTSIDE_ADDRESS = IPv4Address("192.0.2.100")
PREFIXLEN = 24
START_TIMEOUT = 10.0
# The daemon's upstream name server: an outside address, so that containers never ask the
# machine's own resolvers (nothing answers there unless a scenario runs a server).
LAB_DNS_SERVER = "192.0.2.53"


class LabError(RuntimeError):
    """A lab command failed; the message carries its output."""


class Lab:
    def __init__(self) -> None:
        """Name the lab and make its directory under /run; the ``with`` block builds the rest."""
        self.name = "nsnet-lab-" + secrets.token_hex(3)
        self.directory = Path(tempfile.mkdtemp(prefix=self.name + "-", dir="/run"))
        self.host_netns = self.directory / "host.net"
        self.outside_netns = self.directory / "outside.net"
        self.root = self.directory / "root"
        self.daemon: subprocess.Popen | None = None

    # Set-up and teardown

    def __enter__(self) -> "Lab":
        try:
            self._make_namespaces()
            self._start_daemon()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _make_namespaces(self) -> None:
        for path in (self.host_netns, self.outside_netns):
            namespace.create(path, None, None)

        host = Netlink.open(self.host_netns)
        outside = Netlink.open(self.outside_netns)
        try:
            host.set_up("lo")
            outside.set_up("lo")
            host.add_veth_pair(HOST_UPLINK, "eth0", str(self.outside_netns))
            host.add_address(host.link_index(HOST_UPLINK), HOST_ADDRESS, PREFIXLEN)
            host.set_up(HOST_UPLINK)
            outside_index = outside.link_index("eth0")
            outside.add_address(outside_index, OUTSIDE_ADDRESS, PREFIXLEN)
            outside.set_up(outside_index)
            host.add_default_route(OUTSIDE_ADDRESS, host.link_index(HOST_UPLINK))
        finally:
            host.close()
            outside.close()

    def _start_daemon(self) -> None:
        self.root.mkdir()
        log = open(self.root / "nsnetd.log", "ab")
        self.daemon = subprocess.Popen(
            self._in_host(_program("nsnetd", "nsnet.daemon") + ["--dns", LAB_DNS_SERVER]),
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        socket_path = self.root / "run" / "nsnetd.sock"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if socket_path.exists():
                with contextlib.suppress(LabError):
                    self.nsnet("version")
                    return
            if self.daemon.poll() is not None:
                break
            time.sleep(0.05)
        raise LabError(f"nsnetd did not start; its log:\n{self.daemon_log()}")

    def daemon_log(self) -> str:
        """The text of the lab daemon's log (empty before it starts)."""
        path = self.root / "nsnetd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        """Remove everything the lab made, going on past failures."""
        if self.daemon is not None and self.daemon.poll() is None:
            with contextlib.suppress(LabError):
                ids = self.nsnet("ps", "-aq").split()
                if ids:
                    self.nsnet("rm", "-f", *ids)
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        self._kill_processes_inside()
        for mount_point in reversed(_mounts_under(self.directory)):
            with contextlib.suppress(OSError):
                namespace.umount(mount_point)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _kill_processes_inside(self) -> None:
        """Kill processes left in the lab's namespaces (ones the lab's containers started)."""
        inodes = set()
        for path in list(self.directory.glob("*.net")) + list(self.root.glob("run/netns/*")):
            with contextlib.suppress(OSError):
                inodes.add(namespace.inode(path))
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if namespace.inode(entry / "ns" / "net") in inodes:
                    os.kill(int(entry.name), signal.SIGKILL)

    # Running things

    def _env(self) -> dict[str, str]:
        env = dict(os.environ, NSNET_ROOT=str(self.root))
        package_parent = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [package_parent, os.environ.get("PYTHONPATH")])
        )
        return env

    def _in_host(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net={self.host_netns}", "--", *argv]

    def run(self, argv: list[str], check: bool = True, netns: Path | None = None) -> str:
        """Run ``argv`` in the host namespace (or ``netns``) and return its standard output."""
        command = ["nsenter", f"--net={netns or self.host_netns}", "--", *argv]
        result = subprocess.run(
            command, env=self._env(), stdin=subprocess.DEVNULL, capture_output=True, text=True
        )
        if check and result.returncode != 0:
            raise LabError(
                f"'{' '.join(argv)}' failed with exit code {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result.stdout

    def nsnet(self, *args: str, check: bool = True) -> str:
        """Run the nsnet CLI against the lab's daemon."""
        return self.run(_program("nsnet", "nsnet.cli") + list(args), check=check)

    def attempt(self, *args: str) -> subprocess.CompletedProcess:
        """Run the nsnet CLI and return the whole result, whether it failed or not."""
        command = self._in_host(_program("nsnet", "nsnet.cli") + list(args))
        return subprocess.run(
            command, env=self._env(), stdin=subprocess.DEVNULL, capture_output=True, text=True
        )

    def host(self, *argv: str, check: bool = True) -> str:
        """Run ``argv`` in the lab's host namespace and return its standard output."""
        return self.run(list(argv), check=check)

    def outside(self, *argv: str, check: bool = True) -> str:
        """Run ``argv`` in the lab's outside namespace and return its standard output."""
        return self.run(list(argv), check=check, netns=self.outside_netns)

    # The same, printed as a terminal session (the demo and examples show what they run)

    def show(self, *args: str) -> str:
        """Run the nsnet CLI, printing command and output as a terminal shows them; the output."""
        return _echo("host", "nsnet " + " ".join(args), self.nsnet(*args))

    def show_host(self, *argv: str) -> str:
        """Run ``argv`` in the host namespace, printing command and output; the output."""
        return _echo("host", " ".join(argv), self.host(*argv))

    def show_outside(self, *argv: str) -> str:
        """Run ``argv`` in the outside namespace, printing command and output; the output."""
        return _echo("outside", " ".join(argv), self.outside(*argv))


def _echo(where: str, command: str, output: str) -> str:
    print(f"{where}$ {command}")
    print(output, end="" if output.endswith("\n") or not output else "\n", flush=True)
    return output


def heading(text: str) -> None:
    """Print a scenario's title."""
    print(f"\n=== {text} ===", flush=True)


def _program(script: str, module: str) -> list[str]:
    """One of nsnet's console scripts: the installed one beside this interpreter, or the module."""
    beside = Path(sys.executable).parent / script
    if beside.exists():
        return [str(beside)]
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


def _mounts_under(directory: Path) -> list[str]:
    prefix = str(directory.resolve()) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [point for point in points if point.startswith(prefix)]
