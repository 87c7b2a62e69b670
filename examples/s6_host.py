"""S6: `--network host` shares the host's namespace: its uplink, the bridge, the veth ends."""

import re
import sys

from nsnet.lab import Lab, heading


def main() -> int:
    heading("S6: --network host")
    with Lab() as lab:
        lab.show("run", "-d", "--name", "c1", "--", "sleep", "infinity")
        inside = lab.show("run", "--rm", "--network", "host", "--", "ip", "-br", "link")
        host = lab.host("ip", "-br", "link")
        names = sorted(re.findall(r"^(\S+?)(?:@\S+)?\s", inside, re.MULTILINE))
        assert names == sorted(re.findall(r"^(\S+?)(?:@\S+)?\s", host, re.MULTILINE))
        assert "uplink0" in names and "nsnet0" in names, names
        assert any(re.fullmatch(r"veth[0-9a-f]{7}", name) for name in names), names
        addresses = lab.show("run", "--rm", "--network", "host", "--", "ip", "-4", "-br", "addr")
        assert "192.0.2.1/24" in addresses, addresses
        print("observed: the host's interfaces and addresses; no NAT in between")
    return 0


if __name__ == "__main__":
    sys.exit(main())
