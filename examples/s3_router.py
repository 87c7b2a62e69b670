"""S3: two virtual switches joined by a veth pair; then two subnets joined by a router.

With both switches in one subnet, containers on either side reach each other directly across
the joining link. Put in different subnets (two nsnet networks), they are isolated, and they
stay so through a router container with a leg in each network while its forwarding is off,
even once they route through it; the router started with ``--sysctl net.ipv4.ip_forward=1``
carries their traffic.
"""

import json
import sys

from nsnet.lab import Lab, heading


def reaches(lab: Lab, container: str, address: str) -> bool:
    output = lab.nsnet("exec", container, "--", "ping", "-c", "1", "-W", "1", address, check=False)
    return " 0% packet loss" in output


def show_attempt(lab: Lab, *args: str) -> None:
    """Print an nsnet command that is expected to fail, and its output, as ``lab.show`` does."""
    result = lab.attempt(*args)
    print(f"host$ nsnet {' '.join(args)}")
    print(result.stdout + result.stderr, end="", flush=True)
    print(f"(exit code {result.returncode})")


def main() -> int:
    heading("S3: joined switches, then a router between two subnets")
    with Lab() as lab:
        # One subnet over two switches: nsnet's bridge "switch1", and "switch2" made by hand,
        # joined by a veth pair; bravo hangs off switch2 with an address set by hand.
        lab.show(
            "network",
            "create",
            "--subnet",
            "10.10.0.0/24",
            "--ip-range",
            "10.10.0.0/25",
            "-o",
            "com.docker.network.bridge.name=switch1",
            "left",
        )
        lab.show("run", "-d", "--name", "alpha", "--network", "left", "--", "sleep", "infinity")
        lab.show("run", "-d", "--name", "bravo", "--network", "none", "--", "sleep", "infinity")
        b_pid = json.loads(lab.nsnet("inspect", "bravo"))[0]["State"]["Pid"]
        for command in (
            "ip link add switch2 type bridge",
            "ip link set switch2 up",
            "ip link add join1 type veth peer name join2",
            "ip link set join1 master switch1 up",
            "ip link set join2 master switch2 up",
            "ip link add port0 type veth peer name b0",
            "ip link set port0 master switch2 up",
            f"ip link set b0 netns {b_pid}",
        ):
            lab.show_host(*command.split())
        lab.show("exec", "bravo", "--", "ip", "addr", "add", "10.10.0.200/24", "dev", "b0")
        lab.show("exec", "bravo", "--", "ip", "link", "set", "b0", "up")
        lab.show("exec", "alpha", "--", "ping", "-c", "2", "10.10.0.200")
        assert reaches(lab, "alpha", "10.10.0.200"), "same subnet across joined switches"
        print(
            "observed: alpha (switch1) reaches bravo (switch2) directly: one subnet, two switches"
        )

        # Two subnets, two networks: isolated until a router joins them.
        lab.show("network", "create", "--subnet", "10.20.0.0/24", "right")
        lab.show("run", "-d", "--name", "charlie", "--network", "right", "--", "sleep", "infinity")
        assert not reaches(lab, "alpha", "10.20.0.2")
        print("observed: alpha (10.10.0.0/24) cannot reach charlie (10.20.0.0/24)")
        # A router with a leg in each network, started without the sysctl: forwarding is off,
        # as in any new namespace. Even with both sides routing through it, isolation holds.
        router_run = ("run", "-d", "--name", "router", "--network", "left", "--ip", "10.10.0.254")
        lab.show(*router_run, "--", "sleep", "infinity")
        lab.show("network", "connect", "--ip", "10.20.0.254", "right", "router")
        lab.show("exec", "router", "--", "sysctl", "net.ipv4.ip_forward")
        assert not reaches(lab, "alpha", "10.20.0.2"), "no route through the router yet"
        lab.show("exec", "alpha", "--", "ip", "route", "add", "10.20.0.0/24", "via", "10.10.0.254")
        lab.show(
            "exec", "charlie", "--", "ip", "route", "add", "10.10.0.0/24", "via", "10.20.0.254"
        )
        assert reaches(lab, "router", "10.10.0.2") and reaches(lab, "router", "10.20.0.2"), (
            "the router reaches both sides itself"
        )
        show_attempt(lab, "exec", "alpha", "--", "ping", "-c", "2", "-W", "1", "10.20.0.2")
        assert not reaches(lab, "alpha", "10.20.0.2") and not reaches(lab, "charlie", "10.10.0.2")
        print(
            "observed: routed through a router with forwarding off, alpha and charlie cannot talk"
        )

        # The same router again, now with --sysctl net.ipv4.ip_forward=1; the routes stay.
        lab.show("rm", "-f", "router")
        lab.show(*router_run, "--sysctl", "net.ipv4.ip_forward=1", "--", "sleep", "infinity")
        lab.show("network", "connect", "--ip", "10.20.0.254", "right", "router")
        lab.show("exec", "router", "--", "sysctl", "net.ipv4.ip_forward")
        lab.show("exec", "alpha", "--", "ping", "-c", "2", "10.20.0.2")
        assert reaches(lab, "alpha", "10.20.0.2") and reaches(lab, "charlie", "10.10.0.2")
        print("observed: with forwarding on, alpha and charlie talk through the router's two legs")

        for link in ("switch2", "join1", "port0"):
            lab.host("ip", "link", "del", link, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
