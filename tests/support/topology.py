"""Throwaway machines for tests: a "host" namespace with an uplink to an "outside" namespace.

The host looks like a real machine: an uplink ``eth0`` with 192.0.2.1/24 and a default route via
192.0.2.100, the address of the outside namespace, which stands in for the internet. Only
documentation addresses are used, so no packet can leave the namespaces a test made.
"""

from tests.support.netns import Namespace, NamespacePool

HOST_ADDRESS = "192.0.2.1"
OUTSIDE_ADDRESS = "192.0.2.100"
PREFIX_LENGTH = 24
UPLINK_IFNAME = "eth0"


class HostWithOutside:
    """A "host" namespace joined by a veth pair to an "outside" namespace.

    Use as a context manager or call ``close()``; both namespaces, and every process inside them,
    are removed.
    """

    host_address = HOST_ADDRESS
    outside_address = OUTSIDE_ADDRESS
    host_ifname = UPLINK_IFNAME
    outside_ifname = UPLINK_IFNAME

    def __init__(self, pool: NamespacePool | None = None) -> None:
        self._own_pool = pool is None
        self.pool = pool or NamespacePool()
        try:
            self.host: Namespace = self.pool.create("host")
            self.outside: Namespace = self.pool.create("outside")
            self._wire()
        except BaseException:
            if self._own_pool:
                self.pool.close()
            raise

    def __enter__(self) -> "HostWithOutside":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HostWithOutside(host={self.host.name!r}, outside={self.outside.name!r})"

    def _wire(self) -> None:
        # Made from inside the host namespace with the peer sent straight to the outside one,
        # so that no interface ever appears in the machine's own namespace.
        self.host.run(
            "ip", "link", "add", self.host_ifname, "type", "veth",
            "peer", "name", self.outside_ifname, "netns", self.outside.name,
        )  # fmt: skip

        self.host.run(
            "ip", "addr", "add", f"{HOST_ADDRESS}/{PREFIX_LENGTH}", "dev", self.host_ifname
        )
        self.host.run("ip", "link", "set", self.host_ifname, "up")
        self.outside.run(
            "ip", "addr", "add", f"{OUTSIDE_ADDRESS}/{PREFIX_LENGTH}", "dev", self.outside_ifname
        )
        self.outside.run("ip", "link", "set", self.outside_ifname, "up")

        self.host.run("ip", "route", "add", "default", "via", OUTSIDE_ADDRESS)

    @property
    def namespaces(self) -> list[Namespace]:
        """The host and outside namespaces."""
        return [self.host, self.outside]

    def close(self) -> None:
        """Remove both namespaces (and the pool's other namespaces if the pool is ours)."""
        if self._own_pool:
            self.pool.close()
            return

        problems = []
        for namespace in (self.outside, self.host):
            problems.extend(namespace.delete())
        if problems:
            raise AssertionError("cleanup failed:\n" + "\n".join(problems))
