"""S2: every container is one end of a veth pair whose other end sits on the bridge.

Inside the container the interface shows as eth0@ifN, where N is the index of the host end;
on the host the end shows as veth<hex>@ifM ... master nsnet0, where M is the container end's
index. A new container adds a new pair; the bridge stays when the containers are gone
(NO-CARRIER, state DOWN).
"""

import re
import sys

from nsnet.lab import Lab, heading


def main() -> int:
    heading("S2: veth pairs between the containers and the bridge")
    with Lab() as lab:
        lab.show("run", "-d", "--name", "c1", "--", "sleep", "infinity")
        inside = lab.show("exec", "c1", "--", "ip", "-d", "link", "show", "eth0")
        container_index, host_index = map(
            int, re.search(r"^(\d+): eth0@if(\d+):", inside, re.MULTILINE).groups()
        )

        host_side = lab.show_host("ip", "link", "show", "master", "nsnet0")
        pairs = re.findall(r"^(\d+): (veth[0-9a-f]{7})@if(\d+):", host_side, re.MULTILINE)
        assert len(pairs) == 1, host_side
        index, name, peer_index = pairs[0]
        assert int(index) == host_index, (index, host_index)
        assert int(peer_index) == container_index, (peer_index, container_index)
        assert "master nsnet0" in host_side
        print(f"observed: eth0@if{host_index} in c1 is the peer of {name} (index {index})")

        lab.show("run", "-d", "--name", "c2", "--", "sleep", "infinity")
        host_side = lab.show_host("ip", "link", "show", "master", "nsnet0")
        assert len(re.findall(r"veth[0-9a-f]{7}@if\d+", host_side)) == 2, host_side

        lab.show("rm", "-f", "c1", "c2")
        bridge = lab.show_host("ip", "link", "show", "nsnet0")
        assert "NO-CARRIER" in bridge and "state DOWN" in bridge, bridge
        assert lab.host("ip", "link", "show", "master", "nsnet0").strip() == ""
    return 0


if __name__ == "__main__":
    sys.exit(main())
