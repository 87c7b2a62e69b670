"""S8: `network ls` and `network inspect bridge`, with Docker's columns and fields."""

import json
import re
import sys

from nsnet.lab import Lab, heading

INSPECT_KEYS = [
    "Name",
    "Id",
    "Created",
    "Scope",
    "Driver",
    "EnableIPv6",
    "IPAM",
    "Internal",
    "Attachable",
    "Ingress",
    "ConfigFrom",
    "ConfigOnly",
    "Containers",
    "Options",
    "Labels",
]


def main() -> int:
    heading("S8: network ls and network inspect bridge")
    with Lab() as lab:
        listing = lab.show("network", "ls")
        assert listing.splitlines()[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
        rows = {tuple(line.split()[1:]) for line in listing.splitlines()[1:]}
        assert rows == {
            ("bridge", "bridge", "local"),
            ("host", "host", "local"),
            ("none", "null", "local"),
        }, rows

        lab.show("run", "-d", "--name", "c1", "--", "sleep", "infinity")
        lab.show("run", "-d", "--name", "c2", "--", "sleep", "infinity")
        [bridge] = json.loads(lab.show("network", "inspect", "bridge"))
        assert list(bridge) == INSPECT_KEYS, list(bridge)
        assert re.fullmatch(r"[0-9a-f]{64}", bridge["Id"])
        assert bridge["IPAM"]["Driver"] == "default"
        assert bridge["IPAM"]["Config"] == [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]
        members = {entry["Name"]: entry for entry in bridge["Containers"].values()}
        assert members["c1"]["IPv4Address"] == "172.17.0.2/16", members
        assert members["c2"]["IPv4Address"] == "172.17.0.3/16", members
        assert members["c1"]["MacAddress"] == "02:42:ac:11:00:02", members
        assert bridge["Options"] == {
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.enable_icc": "true",
            "com.docker.network.bridge.enable_ip_masquerade": "true",
            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
            "com.docker.network.bridge.name": "nsnet0",
            "com.docker.network.driver.mtu": "1500",
        }, bridge["Options"]
    return 0


if __name__ == "__main__":
    sys.exit(main())
