"""Bridge networking through nsnetd and the nsnet CLI (issue 2, point 9).

Containers on one bridge ping each other and their gateway; two user networks are two
separate bridges with no layer-2 path between them (frames a container floods on one never
reach the other bridge); ``ip -d link`` in a container shows ``eth0@ifN`` where N is the index
of the host's veth end, which shows ``master <bridge>`` and ``@ifM`` with M the index of the
container's end. Real traffic between the test's namespaces, seen with tcpdump in the host.
"""

import ipaddress
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon import Daemon

PING = ("ping", "-c", "1", "-W", "2")
# `ip -d link` text: "7: eth0@if8: <...> mtu 1500 ... master nsnet0 state UP ...".
LINK_LINE = re.compile(r"^(?P<index>\d+): (?P<ifname>[\w.-]+)(?:@if(?P<peer>\d+))?: <")
MASTER = re.compile(r" master (?P<master>\S+) ")
CAPTURE_READY_TIMEOUT = 10
CAPTURE_STOP_TIMEOUT = 10
# Limited broadcasts on a container's eth0, to a port nothing listens on.
BROADCAST = r"""
import socket, sys
sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sender.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
sender.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
for _ in range(int(sys.argv[1])):
    sender.sendto(b"anyone on this switch?", ("255.255.255.255", 9))
"""
BROADCASTS = 3


def inspect(daemon: Daemon, name: str) -> dict:
    return json.loads(daemon.cli("inspect", name).stdout)[0]


def network_inspect(daemon: Daemon, name: str) -> dict:
    return json.loads(daemon.cli("network", "inspect", name).stdout)[0]


def endpoint(daemon: Daemon, container: str, network: str) -> dict:
    """The container's settings on ``network`` (IPAddress, MacAddress, Gateway...)."""
    return inspect(daemon, container)["NetworkSettings"]["Networks"][network]


def pings(daemon: Daemon, container: str, address: str) -> subprocess.CompletedProcess:
    return daemon.cli("exec", container, "--", *PING, address, check=False)


def links(ip_d_link: str) -> dict[str, dict]:
    """``ip -d link show`` text as {ifname: {"index", "peer", "master"}} (None when absent)."""
    found = {}
    for line in ip_d_link.splitlines():
        match = LINK_LINE.match(line)
        if match is None:
            continue
        master = MASTER.search(line)
        found[match["ifname"]] = {
            "index": int(match["index"]),
            "peer": int(match["peer"]) if match["peer"] else None,
            "master": master["master"] if master else None,
        }
    return found


def host_links_json(daemon: Daemon) -> list[dict]:
    return json.loads(daemon.exec_in_host("ip", "-d", "-j", "link", "show").stdout)


class Capture:
    """tcpdump on one interface of the host namespace while the block runs.

    ``lines`` holds what it printed (one frame a line, with link-level headers) once the block
    is left; the process is ended by its pid whatever happens.
    """

    def __init__(self, daemon: Daemon, ifname: str, bpf_filter: str) -> None:
        self.argv = daemon.nsenter_argv(
            "tcpdump", "-i", ifname, "-n", "-e", "-l", "--immediate-mode", bpf_filter
        )
        self.ifname = ifname
        self.process: subprocess.Popen | None = None
        self.lines: list[str] = []

    def __enter__(self) -> "Capture":
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # tcpdump says "listening on IFNAME" once its socket is bound, then prints frames.
        # A reader thread is not needed: it writes nothing else to stderr until it stops.
        said = []
        while True:
            line = self.process.stderr.readline()
            said.append(line)
            if "listening on" in line:
                return self
            if not line:
                self.process.wait(timeout=CAPTURE_STOP_TIMEOUT)
                raise AssertionError(f"tcpdump on {self.ifname} did not start: {''.join(said)}")

    def __exit__(self, *exc_info) -> None:
        # SIGINT makes tcpdump print what it still holds and exit.
        self.process.send_signal(signal.SIGINT)
        try:
            output, _ = self.process.communicate(timeout=CAPTURE_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        # It may end its output with an empty line.
        self.lines = [line for line in output.splitlines() if line.strip()]


def arp_requests(lines: list[str], target: str) -> list[str]:
    return [line for line in lines if f"Request who-has {target} " in line]


def broadcasts(lines: list[str]) -> list[str]:
    return [line for line in lines if "255.255.255.255.9: UDP" in line]


@pytest.mark.parametrize("network", ["bridge", "front"])
def test_containers_on_one_bridge_ping_each_other_and_the_gateway(
    daemon: Daemon, network: str
) -> None:
    if network != "bridge":
        daemon.cli("network", "create", "--subnet", "10.71.0.0/24", network)
    for name in ("first", "second"):
        daemon.cli("run", "-d", "--name", name, "--network", network, "--", "sleep", "300")
    first = endpoint(daemon, "first", network)
    second = endpoint(daemon, "second", network)
    inspected = network_inspect(daemon, network)
    config = inspected["IPAM"]["Config"][0]
    # Inspect names the gateway only when it was given (as Docker's does); else the first host.
    gateway = config.get("Gateway", str(ipaddress.ip_network(config["Subnet"])[1]))
    bridge = "nsnet0" if network == "bridge" else f"br-{inspected['Id'][:12]}"
    on_bridge = json.loads(
        daemon.exec_in_host("ip", "-4", "-j", "address", "show", "dev", bridge).stdout
    )[0]["addr_info"]

    assert [address["local"] for address in on_bridge] == [gateway]
    assert first["Gateway"] == second["Gateway"] == gateway
    assert first["IPAddress"] != second["IPAddress"]
    for container, address in (
        ("first", second["IPAddress"]),
        ("second", first["IPAddress"]),
        ("first", gateway),
        ("second", gateway),
    ):
        answered = pings(daemon, container, address)
        assert answered.returncode == 0, (container, address, answered.stdout, answered.stderr)
        assert f"from {address}" in answered.stdout, answered.stdout

    daemon.cli("rm", "-f", "first", "second")


def test_two_user_networks_are_two_bridges_with_no_layer_2_path(
    daemon: Daemon, tmp_path: Path
) -> None:
    daemon.cli("network", "create", "--subnet", "10.71.0.0/24", "front")
    daemon.cli("network", "create", "--subnet", "10.72.0.0/24", "back")
    for name, network in (("f1", "front"), ("f2", "front"), ("b1", "back")):
        daemon.cli("run", "-d", "--name", name, "--network", network, "--", "sleep", "300")
    front = network_inspect(daemon, "front")
    back = network_inspect(daemon, "back")
    f1 = endpoint(daemon, "f1", "front")
    f2_address = endpoint(daemon, "f2", "front")["IPAddress"]
    b1_address = endpoint(daemon, "b1", "back")["IPAddress"]
    broadcaster = tmp_path / "broadcast.py"
    broadcaster.write_text(BROADCAST)

    # Two bridges of their own, neither a port of anything; each container's veth on its own.
    front_bridge, back_bridge = f"br-{front['Id'][:12]}", f"br-{back['Id'][:12]}"
    by_name = {link["ifname"]: link for link in host_links_json(daemon)}
    for bridge in (front_bridge, back_bridge):
        assert by_name[bridge]["linkinfo"]["info_kind"] == "bridge", by_name[bridge]
        assert "master" not in by_name[bridge], by_name[bridge]
    ports = sorted(
        link["master"]
        for link in by_name.values()
        if link.get("linkinfo", {}).get("info_kind") == "veth" and "master" in link
    )
    assert ports == sorted([front_bridge, front_bridge, back_bridge])

    def flood_from_f1() -> subprocess.CompletedProcess:
        """f1 asks who has b1's address and sends limited broadcasts: frames for all of L2."""
        daemon.cli("exec", "f1", "--", sys.executable, str(broadcaster), str(BROADCASTS))
        return daemon.cli(
            "exec", "f1", "--", "busybox", "arping", "-c", "3", "-w", "3", "-I", "eth0",
            b1_address, check=False,
        )  # fmt: skip

    # Everything f1 sends, seen on its own bridge (the control) and on the other one.
    from_f1 = f"ether src {f1['MacAddress']}"
    with Capture(daemon, front_bridge, from_f1) as on_front:
        with Capture(daemon, back_bridge, from_f1) as on_back:
            arping = flood_from_f1()

    assert arping.returncode != 0, f"b1 answered f1's ARP: {arping.stdout}"
    assert arp_requests(on_front.lines, b1_address), on_front.lines
    assert len(broadcasts(on_front.lines)) == BROADCASTS, on_front.lines
    assert on_back.lines == [], f"frames of f1 reached {back_bridge}: {on_back.lines}"
    # The same ARP finds a neighbour on f1's own bridge.
    neighbour = daemon.cli("exec", "f1", "--", "busybox", "arping", "-c", "1", "-w", "2",
                           "-I", "eth0", f2_address, check=False)  # fmt: skip
    assert neighbour.returncode == 0, neighbour.stdout

    # The control of the method: with a layer-2 path made by hand (a veth pair joining the
    # two bridges), the same frames do arrive on the other bridge and b1 answers.
    joined = ("nsnt-join-a", "nsnt-join-b")
    daemon.exec_in_host("ip", "link", "add", joined[0], "type", "veth", "peer", "name", joined[1])
    try:
        daemon.exec_in_host("ip", "link", "set", joined[0], "master", front_bridge, "up")
        daemon.exec_in_host("ip", "link", "set", joined[1], "master", back_bridge, "up")
        with Capture(daemon, back_bridge, from_f1) as on_joined_back:
            arping = flood_from_f1()
    finally:
        daemon.exec_in_host("ip", "link", "del", joined[0])

    assert arping.returncode == 0, arping.stdout
    assert arp_requests(on_joined_back.lines, b1_address), on_joined_back.lines
    assert len(broadcasts(on_joined_back.lines)) == BROADCASTS, on_joined_back.lines

    daemon.cli("rm", "-f", "f1", "f2", "b1")


def test_eth_at_if_n_is_the_host_veth_whose_master_is_the_bridge(daemon: Daemon) -> None:
    daemon.cli("network", "create", "--subnet", "10.73.0.0/24", "front")
    daemon.cli("run", "-d", "--name", "paired", "--", "sleep", "300")
    daemon.cli("network", "connect", "front", "paired")
    front_bridge = f"br-{network_inspect(daemon, 'front')['Id'][:12]}"

    inside = links(daemon.cli("exec", "paired", "--", "ip", "-d", "link", "show").stdout)
    host = links(daemon.exec_in_host("ip", "-d", "link", "show").stdout)
    host_by_index = {link["index"]: (ifname, link) for ifname, link in host.items()}

    assert sorted(inside) == ["eth0", "eth1", "lo"], inside
    for ifname, bridge in (("eth0", "nsnet0"), ("eth1", front_bridge)):
        container_end = inside[ifname]
        assert container_end["peer"] is not None, f"{ifname} shows no @ifN: {inside}"
        host_ifname, host_end = host_by_index[container_end["peer"]]
        assert re.fullmatch(r"veth[0-9a-f]{7}", host_ifname), host_ifname
        assert host_end["master"] == bridge, (host_ifname, host_end)
        assert host_end["peer"] == container_end["index"], (host_ifname, host_end, ifname)

    daemon.cli("rm", "-f", "paired")


def test_a_bridge_keeps_its_mac_address_as_ports_come_and_go(daemon: Daemon) -> None:
    """Regression: the kernel gave a bridge its lowest port's MAC, which changed when that
    port went, and containers that had cached the gateway's old MAC lost it for ~30 s."""
    daemon.cli("network", "create", "--subnet", "10.97.0.0/24", "macs")
    bridge = json.loads(daemon.cli("network", "inspect", "macs").stdout)[0]["Id"][:12]

    def bridge_mac() -> str:
        shown = daemon.exec_in_host("ip", "-j", "link", "show", f"br-{bridge}").stdout
        return json.loads(shown)[0]["address"]

    assert bridge_mac() == "02:42:0a:61:00:01"  # from the gateway 10.97.0.1
    for number in range(4):
        daemon.cli("run", "-d", "--name", f"m{number}", "--network", "macs", "--", "sleep", "300")
        assert bridge_mac() == "02:42:0a:61:00:01", f"after m{number} joined"
    for number in range(4):
        daemon.cli("rm", "-f", f"m{number}")
        assert bridge_mac() == "02:42:0a:61:00:01", f"after m{number} left"
