"""What nsnetd sets up in its host namespace, read inside the throwaway host namespace only.

The API socket is mode 0660 and root's (issue 2, point 6); IPv4 forwarding is on and the daemon
logs that it turned it on (issue 3, point 2); ``route_localnet`` is 1 on nsnet's bridges and
stays 0 on ``all``, ``default`` and the uplink (issue 3, point 3, CVE-2020-8558). Each value is
read before the daemon starts as well, so that a value the namespace already had proves nothing.
"""

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.daemon import Daemon
from tests.support.topology import HostWithOutside

FORWARDING_LOGGED = "enabled IPv4 forwarding in the host namespace"


def sysctl(host: HostWithOutside, key: str) -> str:
    """``key`` as the host namespace has it (/proc/sys/net is per network namespace)."""
    return host.host.run("sysctl", "-n", key).stdout.strip()


def route_localnet(host: HostWithOutside, *ifnames: str) -> dict[str, str]:
    return {ifname: sysctl(host, f"net.ipv4.conf.{ifname}.route_localnet") for ifname in ifnames}


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def test_the_socket_is_mode_0660_and_roots(host: HostWithOutside, tmp_path: Path) -> None:
    daemon = Daemon(host, tmp_path / "nsnet")
    # Started with no umask at all, so that the mode is the daemon's doing, not inherited.
    with umask(0):
        daemon.start()
    try:
        status = daemon.socket.lstat()

        assert stat.S_ISSOCK(status.st_mode), stat.filemode(status.st_mode)
        assert stat.filemode(status.st_mode) == "srw-rw----"
        assert (status.st_uid, status.st_gid) == (0, 0)
        assert daemon.cli("version").returncode == 0
    finally:
        daemon.close()


def test_forwarding_is_enabled_and_logged(host: HostWithOutside, tmp_path: Path) -> None:
    assert sysctl(host, "net.ipv4.ip_forward") == "0", "a new namespace forwards already"

    with Daemon(host, tmp_path / "nsnet") as daemon:
        assert sysctl(host, "net.ipv4.ip_forward") == "1"
        logged = [line for line in daemon.console_log.read_text().splitlines() if "INFO" in line]
        assert any(line.endswith(FORWARDING_LOGGED) for line in logged), daemon.logs()


def test_route_localnet_is_on_nsnets_bridges_only(host: HostWithOutside, tmp_path: Path) -> None:
    untouched = ("all", "default", host.host_ifname)
    assert route_localnet(host, *untouched) == dict.fromkeys(untouched, "0")

    with Daemon(host, tmp_path / "nsnet") as daemon:
        assert route_localnet(host, "nsnet0", *untouched) == {
            "nsnet0": "1",
            **dict.fromkeys(untouched, "0"),
        }

        daemon.cli("network", "create", "front")
        front_id = json.loads(daemon.cli("network", "inspect", "front").stdout)[0]["Id"]
        front_bridge = f"br-{front_id[:12]}"
        daemon.cli("run", "-d", "--name", "web", "--network", "front", "-p", "8080:80", "--",
                   "sleep", "300")  # fmt: skip

        assert route_localnet(host, "nsnet0", front_bridge, *untouched) == {
            "nsnet0": "1",
            front_bridge: "1",
            **dict.fromkeys(untouched, "0"),
        }
        daemon.cli("rm", "-f", "web")
