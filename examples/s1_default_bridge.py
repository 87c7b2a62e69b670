"""S1: two containers on the default bridge network.

The article starts two containers and finds in each an eth0 with an address from
172.17.0.0/16 (first .2, then .3) and a default route via 172.17.0.1, the bridge's own
address. They ping each other and the host pings them.
"""

import re
import sys

from nsnet.lab import Lab, heading


def main() -> int:
    heading("S1: two containers on the default bridge")
    with Lab() as lab:
        lab.show("run", "-d", "--name", "c1", "--", "sleep", "infinity")
        lab.show("run", "-d", "--name", "c2", "--", "sleep", "infinity")

        first = lab.show("exec", "c1", "--", "ip", "-4", "addr", "show", "eth0")
        second = lab.show("exec", "c2", "--", "ip", "-4", "addr", "show", "eth0")
        assert "inet 172.17.0.2/16" in first, first
        assert "inet 172.17.0.3/16" in second, second

        routes = lab.show("exec", "c1", "--", "ip", "route")
        assert "default via 172.17.0.1 dev eth0" in routes, routes
        bridge = lab.show_host("ip", "-4", "addr", "show", "nsnet0")
        assert "inet 172.17.0.1/16" in bridge, bridge

        between = lab.show("exec", "c1", "--", "ping", "-c", "3", "-i", "0.2", "172.17.0.3")
        assert " 0% packet loss" in between, between
        from_host = lab.show_host("ping", "-c", "3", "-i", "0.2", "172.17.0.2")
        assert " 0% packet loss" in from_host, from_host
        to_gateway = lab.show("exec", "c2", "--", "ping", "-c", "1", "172.17.0.1")
        assert " 0% packet loss" in to_gateway, to_gateway

        average = re.search(r"= [\d.]+/([\d.]+)/", between)
        print(f"observed: round trip between containers averages {average.group(1)} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
