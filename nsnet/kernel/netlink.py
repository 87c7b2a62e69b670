"""Links, addresses and routes through pyroute2, one handle per network namespace.

pyroute2 0.9 opens its netlink socket lazily, per thread, in whatever namespace that thread is
in at first use. ``Netlink.open`` therefore makes the handle's socket while the calling thread
is inside the wanted namespace, and a handle must only be used from the thread that opened it
(the daemon's engine thread).

Every link nsnet makes carries an alias ``nsnet:<owner id>`` so that reconciliation can tell
ours from a foreign link with a look-alike name.
"""

import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from nsnet.errors import Conflict, NotFound, NsnetError, Unavailable
from nsnet.kernel import namespace

log = logging.getLogger(__name__)

ALIAS_PREFIX = "nsnet:"
IFF_UP = 0x1


def owner_alias(owner_id: str) -> str:
    return f"{ALIAS_PREFIX}{owner_id}"


def translate(error: NetlinkError, action: str) -> NsnetError:
    """An nsnet error for a netlink failure, keeping the errno's meaning."""
    message = f"cannot {action}: {os.strerror(error.code)}"
    if error.code == errno.EEXIST:
        return Conflict(message)
    if error.code in (errno.ENODEV, errno.ENOENT, errno.ESRCH):
        return NotFound(message)
    if error.code in (errno.EOPNOTSUPP, errno.EAFNOSUPPORT):
        return Unavailable(message + " (the kernel lacks this feature)")
    return Unavailable(message)


@contextlib.contextmanager
def netlink_errors(action: str) -> Iterator[None]:
    try:
        yield
    except NetlinkError as error:
        raise translate(error, action) from error


class Netlink:
    """A pyroute2 handle bound to one network namespace."""

    def __init__(self, ipr: IPRoute, netns_path: str | None) -> None:
        self.ipr = ipr
        self.netns_path = netns_path

    @classmethod
    def open(cls, netns_path: str | Path | None = None) -> "Netlink":
        """A handle in ``netns_path``, or in the calling thread's namespace when None."""
        if netns_path is None:
            ipr = IPRoute()
            ipr.link("get", index=1)  # opens the socket here, now
            return cls(ipr, None)
        with namespace.entered(netns_path):
            ipr = IPRoute()
            ipr.link("get", index=1)
        return cls(ipr, str(netns_path))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ipr.close()

    # Links

    def link_index(self, ifname: str) -> int | None:
        """The index of ``ifname``, or None when there is no such link."""
        try:
            reply = self.ipr.link("get", ifname=ifname)
        except NetlinkError as error:
            if error.code == errno.ENODEV:
                return None
            raise translate(error, f"look up link '{ifname}'") from error
        return reply[0]["index"]

    def link(self, index: int) -> dict:
        """A summary of one link: ifname, alias, kind, master, mac, mtu, up, peer index."""
        with netlink_errors(f"look up link {index}"):
            message = self.ipr.link("get", index=index)[0]
        return _summary(message)

    def links(self) -> list[dict]:
        with netlink_errors("list links"):
            return [_summary(message) for message in self.ipr.get_links()]

    def add_bridge(self, ifname: str, mtu: int, owner_id: str) -> int:
        """Create a bridge (down, no address) and return its index."""
        with netlink_errors(f"create bridge '{ifname}'"):
            self.ipr.link("add", ifname=ifname, kind="bridge", mtu=mtu)
        index = self.link_index(ifname)
        with netlink_errors(f"set alias of bridge '{ifname}'"):
            self.ipr.link("set", index=index, ifalias=owner_alias(owner_id))
        return index

    def add_veth(
        self,
        host_ifname: str,
        peer_ifname: str,
        peer_netns_path: str,
        master_index: int,
        mac_address: str,
        mtu: int,
        owner_id: str,
    ) -> int:
        """Create a veth pair whose peer lands directly in the sandbox; return the host index.

        The host end is made enslaved to the bridge and up in the same message.
        """
        peer_fd = os.open(peer_netns_path, os.O_RDONLY)
        try:
            with netlink_errors(f"create veth pair '{host_ifname}'"):
                self.ipr.link(
                    "add",
                    ifname=host_ifname,
                    kind="veth",
                    mtu=mtu,
                    master=master_index,
                    ifalias=owner_alias(owner_id),
                    peer={
                        "ifname": peer_ifname,
                        "net_ns_fd": peer_fd,
                        "address": mac_address,
                        "mtu": mtu,
                    },
                )
        finally:
            os.close(peer_fd)
        index = self.link_index(host_ifname)
        if index is None:
            raise Unavailable(f"cannot create veth pair '{host_ifname}': it vanished")
        return index

    def set_up(self, index: int, ifname: str = "") -> None:
        with netlink_errors(f"set link '{ifname or index}' up"):
            self.ipr.link("set", index=index, state="up")

    def set_hairpin(self, index: int, ifname: str = "") -> None:
        """Let a bridge port send frames back out of the port they came in on."""
        with netlink_errors(f"set hairpin mode on '{ifname or index}'"):
            self.ipr.brport("set", index=index, hairpin_mode=1)

    def delete_link(self, ifname: str) -> bool:
        """Delete ``ifname``; False when it did not exist (deletion is idempotent)."""
        index = self.link_index(ifname)
        if index is None:
            return False
        try:
            self.ipr.link("del", index=index)
        except NetlinkError as error:
            if error.code == errno.ENODEV:
                return False
            raise translate(error, f"delete link '{ifname}'") from error
        return True

    # Addresses and routes

    def add_address(
        self, index: int, address: IPv4Address, prefixlen: int, ifname: str = ""
    ) -> None:
        with netlink_errors(f"add address {address}/{prefixlen} to '{ifname or index}'"):
            self.ipr.addr("add", index=index, address=str(address), prefixlen=prefixlen)

    def addresses(self, index: int) -> list[tuple[str, int]]:
        with netlink_errors(f"list addresses of link {index}"):
            return [
                (message.get("IFA_ADDRESS"), message["prefixlen"])
                for message in self.ipr.get_addr(index=index, family=2)
            ]

    def add_default_route(self, gateway: IPv4Address, index: int) -> None:
        with netlink_errors(f"add default route via {gateway}"):
            self.ipr.route("add", dst="0.0.0.0/0", gateway=str(gateway), oif=index)

    def ipv4_routes(self) -> list[tuple[str, int]]:
        """Destinations (address, prefix length) of the main table's IPv4 routes."""
        with netlink_errors("list routes"):
            routes = self.ipr.get_routes(family=2, table=254)
        return [(route.get("RTA_DST") or "0.0.0.0", route["dst_len"]) for route in routes]


def _summary(message) -> dict:
    linkinfo = message.get("IFLA_LINKINFO")
    kind = linkinfo.get("IFLA_INFO_KIND") if linkinfo else None
    return {
        "index": message["index"],
        "ifname": message.get("IFLA_IFNAME"),
        "alias": message.get("IFLA_IFALIAS") or "",
        "kind": kind,
        "master": message.get("IFLA_MASTER"),
        "mac_address": message.get("IFLA_ADDRESS"),
        "mtu": message.get("IFLA_MTU"),
        "up": bool(message["flags"] & IFF_UP),
        "link": message.get("IFLA_LINK"),
    }


def write_sysctl(key: str, value: str, netns_path: str | Path | None = None) -> None:
    """Write ``key`` (dotted, e.g. net.ipv4.ip_forward) in the given network namespace.

    /proc/sys/net follows the writing thread's network namespace, so entering is enough.
    """
    path = Path("/proc/sys") / key.replace(".", "/")
    context = namespace.entered(netns_path) if netns_path else contextlib.nullcontext()
    try:
        with context, open(path, "w") as handle:
            handle.write(value)
    except FileNotFoundError as error:
        raise NotFound(f"cannot set sysctl '{key}': no such sysctl") from error
    except OSError as error:
        raise Unavailable(f"cannot set sysctl '{key}' to '{value}': {error.strerror}") from error


def read_sysctl(key: str) -> str:
    with open(Path("/proc/sys") / key.replace(".", "/")) as handle:
        return handle.read().strip()
