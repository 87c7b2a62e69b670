"""S9: an overlay network spans two hosts; each frame travels wrapped in VXLAN over UDP.

Two hosts on one underlay (198.51.100.1 and .2) share an etcd. A network made with
``-d overlay`` on host 1 is listed on host 2 with scope global; a container on each host joins
it and they ping each other by name. A capture on the underlay between the hosts shows what the
article describes: every packet carries an outer IP header from host 1 to host 2 (UDP port
4789, VXLAN with the network's VNI), and inside it the containers' own packet, which host 2
unwraps and delivers.

Needs Debian's etcd-server (/usr/bin/etcd) and tcpdump.
"""

import json
import re
import shutil
import sys
import time

from nsnet.cluster.lab import FABRIC_BRIDGE, ClusterLab, host_address
from nsnet.lab import heading

CAPTURE_PACKETS = 4


def main() -> int:
    heading("S9: an overlay network across two hosts (VXLAN)")
    if shutil.which("tcpdump") is None:
        print("tcpdump is missing: install Debian's tcpdump", file=sys.stderr)
        return 1
    with ClusterLab(hosts=2) as lab:
        lab.show(1, "network", "create", "-d", "overlay", "--subnet", "10.0.9.0/24", "ov")
        listing = lab.show(2, "network", "ls")
        assert re.search(r"\bov\s+overlay\s+global\b", listing), listing

        lab.show(1, "run", "-d", "--name", "c1", "--network", "ov", "--", "sleep", "infinity")
        lab.show(2, "run", "-d", "--name", "c2", "--network", "ov", "--", "sleep", "infinity")
        inspect = json.loads(lab.nsnet(2, "inspect", "c2"))[0]
        c2_address = inspect["NetworkSettings"]["Networks"]["ov"]["IPAddress"]
        network_id = json.loads(lab.nsnet(2, "network", "inspect", "ov"))[0]["Id"]

        # The capture runs on the underlay, between the hosts: only VXLAN's UDP port.
        capture = lab.popen_fabric(
            ["tcpdump", "-i", FABRIC_BRIDGE, "-nn", "-l", "-c", str(CAPTURE_PACKETS),
             "udp", "port", "4789"]
        )  # fmt: skip
        time.sleep(1)  # tcpdump needs a moment before it sees packets
        ping = lab.show(1, "exec", "c1", "--", "ping", "-c", "2", "-W", "2", "c2")
        assert " 0% packet loss" in ping, ping
        assert f"({c2_address})" in ping, ping

        output, errors = capture.communicate(timeout=20)
        print(f"fabric$ tcpdump -i {FABRIC_BRIDGE} -nn -c {CAPTURE_PACKETS} udp port 4789")
        print(output, end="")
        one, two = host_address(1), host_address(2)
        outer = re.findall(
            rf"IP {re.escape(str(one))}\.\d+ > {re.escape(str(two))}\.4789: VXLAN", output
        )
        back = re.findall(
            rf"IP {re.escape(str(two))}\.\d+ > {re.escape(str(one))}\.4789: VXLAN", output
        )
        assert outer and back, f"no VXLAN between {one} and {two}:\n{output}{errors}"
        assert re.search(r"vni 4096", output), output
        assert re.search(rf"> {re.escape(c2_address)}: ICMP echo request", output), output

        # Host 2's end: the VXLAN device in the overlay's own namespace, its socket on the
        # underlay (link-netns), port 4789, no learning, ARP answered locally (proxy).
        overlay = lab.root(2) / "run" / "overlay" / network_id
        device = lab.run(overlay, ["ip", "-d", "link", "show", "vxlan0"], 2)
        print(f"host2$ nsenter --net=<overlay namespace of ov> ip -d link show vxlan0\n{device}")
        assert re.search(r"vxlan id 4096 .*dstport 4789 .*nolearning proxy", device), device
        fdb = lab.run(overlay, ["bridge", "fdb", "show", "dev", "vxlan0"], 2)
        print(f"host2$ nsenter --net=<overlay namespace of ov> bridge fdb show dev vxlan0\n{fdb}")
        assert re.search(rf"dst {re.escape(str(one))} .*self permanent", fdb), fdb
        assert "00:00:00:00:00:00" not in fdb, fdb
        print(
            f"observed: packets between the containers travel as UDP {one} -> {two}:4789 "
            "(VXLAN, VNI 4096); host 2 unwraps them and delivers the ICMP echo to c2"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
