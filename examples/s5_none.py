"""S5: `--network none` gives a container its own namespace with only the loopback."""

import re
import sys

from nsnet.lab import Lab, heading


def main() -> int:
    heading("S5: --network none")
    with Lab() as lab:
        output = lab.show("run", "--rm", "--network", "none", "--", "ip", "addr")
        interfaces = re.findall(r"^\d+: ([^:@]+)[@:]", output, re.MULTILINE)
        assert interfaces == ["lo"], interfaces
        assert "inet 127.0.0.1/8" in output, output
        print("observed: only lo, with 127.0.0.1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
