"""Links, addresses, routes and neighbours over rtnetlink, one channel per network namespace.

Messages are built and parsed with pyroute2's message classes (``ifinfmsg``, ``ifaddrmsg``,
``rtmsg``, ``ndmsg``) and sent on a plain netlink socket that this module opens while the
calling thread is inside the wanted namespace. pyroute2's ``IPRoute`` is not used: in 0.9 it
costs about a millisecond per request and opens sockets lazily per thread, in whatever
namespace that thread happens to be in, which is both slow and unsafe for a daemon that works
in many namespaces. A request here is one ``send`` and one or two ``recv`` calls (about 50 µs).

Every link nsnet makes carries an alias ``nsnet:<owner id>`` so that reconciliation can tell
ours from a foreign link with a look-alike name. The kernel ignores an alias in the message
that creates a link, so it is set by a second message.
"""

import contextlib
import errno
import logging
import os
import socket
import struct
from ipaddress import IPv4Address
from pathlib import Path

from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
)
from pyroute2.netlink.rtnl import (
    RTM_DELLINK,
    RTM_DELNEIGH,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_GETROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from nsnet import failpoints
from nsnet.errors import Conflict, NotFound, NsnetError, Unavailable
from nsnet.kernel import namespace

log = logging.getLogger(__name__)

ALIAS_PREFIX = "nsnet:"
# The link group of nsnet's veth pairs, set in the message that creates them: the alias that
# names the owner can only come in a second message, and a crash in between must not leave a
# pair that looks foreign (reconcile deletes a veth of this group with no alias). "nsnt".
LINK_GROUP = 0x6E736E74
IFF_UP = 0x1
AF_INET = socket.AF_INET
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RTN_UNICAST = 1
IFLA_BRPORT_MODE = "IFLA_BRPORT_MODE"
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NLMSGERR_ATTR_MSG = 1
RECEIVE_BUFFER = 1 << 20
AF_BRIDGE = 7  # the bridge family: FDB entries
NTF_SELF = 0x02  # an FDB entry of the device itself (a VXLAN's remote), not of a bridge
NUD_PERMANENT = 0x80
VXLAN_PORT = 4789  # IANA's; the kernel's default (8472) must never be relied on

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_IFINFO_INDEX = struct.Struct("=i")  # ifinfomsg.ifi_index sits 4 bytes into the body
_IFINFO_SIZE = 16  # struct ifinfomsg: family, pad, type, index, flags, change
_RTA = struct.Struct("=HH")  # struct rtattr: length (header included), type
_U32 = struct.Struct("=I")
IFLA_LINK_TYPE = 5  # IFLA_LINK: the index of the link's lower device, a veth's peer


IPV6_CONF = "/proc/sys/net/ipv6/conf"


def owner_alias(owner_id: str) -> str:
    """The alias that marks a link as nsnet's: ``nsnet:<id of its network or endpoint>``."""
    return f"{ALIAS_PREFIX}{owner_id}"


class NetlinkFailure(OSError):
    """A netlink request the kernel refused; ``errno`` is the kernel's, ``extack`` its words."""

    def __init__(self, code: int, extack: str = "") -> None:
        detail = os.strerror(code) + (f" ({extack})" if extack else "")
        super().__init__(code, detail)
        self.extack = extack


def translate(error: NetlinkFailure, action: str) -> NsnetError:
    """An nsnet error for a netlink failure, keeping the errno's meaning."""
    message = f"cannot {action}: {error.strerror}"
    if error.errno == errno.EEXIST:
        return Conflict(message)
    if error.errno in (errno.ENODEV, errno.ENOENT, errno.ESRCH):
        return NotFound(message)
    if error.errno in (errno.EOPNOTSUPP, errno.EAFNOSUPPORT):
        return Unavailable(message + " (the kernel lacks this feature)")
    return Unavailable(message)


@contextlib.contextmanager
def netlink_errors(action: str):
    """Turn a ``NetlinkFailure`` in the body into nsnet's error: "cannot <action>: <cause>"."""
    try:
        yield
    except NetlinkFailure as error:
        raise translate(error, action) from error


class Netlink:
    """An rtnetlink channel bound to one network namespace; one thread at a time."""

    def __init__(self, sock: socket.socket, netns_path: str | None) -> None:
        """Wrap ``sock``, a bound rtnetlink socket of the namespace at ``netns_path`` (None: the
        opener's); ``open`` makes both.
        """
        self.sock = sock
        self.netns_path = netns_path
        self._sequence = 0
        self._ipv6_conf: int | None = None  # /proc/sys/net/ipv6/conf, opened when first needed

    @classmethod
    def open(cls, netns_path: str | Path | None = None) -> "Netlink":
        """A channel in ``netns_path``, or in the calling thread's namespace when None."""
        context = namespace.entered(netns_path) if netns_path else contextlib.nullcontext()
        with context:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            sock.bind((0, 0))
        except OSError:
            sock.close()
            raise
        return cls(sock, str(netns_path) if netns_path else None)

    def close(self) -> None:
        """Close the socket: the handle no longer keeps its namespace alive."""
        self.sock.close()
        if self._ipv6_conf is not None:
            os.close(self._ipv6_conf)
            self._ipv6_conf = None

    # The wire

    def request(self, message, message_type: int, flags: int = 0) -> list[bytes]:
        """Send one request; return the raw replies (a dump's parts, or a get's answer).

        Raises ``NetlinkFailure`` when the kernel answers with an error.
        """
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        sequence = self._sequence
        header = message["header"]
        header["type"] = message_type
        header["flags"] = NLM_F_REQUEST | flags
        header["sequence_number"] = sequence
        header["pid"] = 0
        message.encode()
        self.sock.send(message.data)

        replies: list[bytes] = []
        dump = bool(flags & NLM_F_DUMP)
        while True:
            data = self.sock.recv(RECEIVE_BUFFER)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, reply_type, _, reply_sequence, _ = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    break
                part = data[offset : offset + length]
                offset += (length + 3) & ~3
                if reply_sequence != sequence:
                    continue  # a late answer to an abandoned request
                if reply_type == NLMSG_ERROR:
                    code = struct.unpack_from("=i", part, _HEADER.size)[0]
                    if code:
                        raise NetlinkFailure(-code, _extack(part))
                    return replies
                if reply_type == NLMSG_DONE:
                    return replies
                replies.append(part)
            if replies and not dump and not flags & NLM_F_ACK:
                return replies

    # Links

    def _link_answer(self, ifname: str) -> bytes | None:
        """The raw RTM_GETLINK answer for ``ifname``, or None when there is no such link."""
        message = ifinfmsg()
        message["attrs"] = [("IFLA_IFNAME", ifname)]
        try:
            return self.request(message, RTM_GETLINK)[0]
        except NetlinkFailure as error:
            if error.errno == errno.ENODEV:
                return None
            raise translate(error, f"look up link '{ifname}'") from error

    def link_index(self, ifname: str) -> int | None:
        """The index of ``ifname``, or None when there is no such link."""
        raw = self._link_answer(ifname)
        # Reading the fixed header field avoids decoding the whole message (~0.3 ms).
        return None if raw is None else _IFINFO_INDEX.unpack_from(raw, _HEADER.size + 4)[0]

    def link_and_peer(self, ifname: str) -> tuple[int, int | None] | None:
        """The index of ``ifname`` and its IFLA_LINK (a veth's peer index), or None when there
        is no such link; read from the raw answer, as ``link_index`` reads its index."""
        raw = self._link_answer(ifname)
        if raw is None:
            return None
        index = _IFINFO_INDEX.unpack_from(raw, _HEADER.size + 4)[0]
        offset = _HEADER.size + _IFINFO_SIZE
        while offset + _RTA.size <= len(raw):
            length, kind = _RTA.unpack_from(raw, offset)
            if length < _RTA.size:
                break
            if kind == IFLA_LINK_TYPE and length >= _RTA.size + 4:
                return index, _U32.unpack_from(raw, offset + _RTA.size)[0]
            offset += (length + 3) & ~3
        return index, None

    def link(self, index: int) -> dict:
        """A summary of one link: ifname, alias, kind, master, mac, mtu, up, peer index."""
        message = ifinfmsg()
        message["index"] = index
        with netlink_errors(f"look up link {index}"):
            replies = self.request(message, RTM_GETLINK)
        return _summary(_decode(ifinfmsg, replies[0]))

    def links(self) -> list[dict]:
        """The summary (as ``link`` gives it) of every link in the namespace."""
        message = ifinfmsg()
        with netlink_errors("list links"):
            replies = self.request(message, RTM_GETLINK, NLM_F_DUMP)
        return [_summary(_decode(ifinfmsg, reply)) for reply in replies]

    def _new_link(self, attrs: list, action: str, up: bool = False) -> None:
        message = ifinfmsg()
        message["attrs"] = attrs
        if up:
            message["flags"] = message["change"] = IFF_UP
        with netlink_errors(action):
            self.request(message, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)

    def _set_link(
        self, link: int | str, attrs: list, action: str, flags: int = 0, change: int = 0
    ):
        """Change a link given by index or, with index 0 in the message, by name."""
        message = ifinfmsg()
        if isinstance(link, int):
            message["index"] = link
        else:
            attrs = [("IFLA_IFNAME", link), *attrs]
        message["flags"] = flags
        message["change"] = change
        message["attrs"] = attrs
        with netlink_errors(action):
            self.request(message, RTM_NEWLINK, NLM_F_ACK)

    def set_alias(self, index: int, alias: str, ifname: str = "") -> None:
        """Set the link's alias; ``ifname`` only names it in an error."""
        self._set_link(index, [("IFLA_IFALIAS", alias)], f"set alias of '{ifname or index}'")

    def add_bridge(
        self, ifname: str, mtu: int, owner_id: str, mac_address: str | None = None
    ) -> int:
        """Create a bridge (down, no address) marked as nsnet's; return its index.

        Without ``mac_address`` the kernel gives the bridge the lowest MAC of its ports, which
        changes whenever that port goes: neighbours that cached the old one lose the bridge
        for as long as their entry lives. A MAC given here stays.
        """
        # Multicast snooping off: its per-port timers and state made every port added or removed
        # cost more the more ports the bridge has, and without a querier it floods anyway.
        bridge_data = {"attrs": [("IFLA_BR_MCAST_SNOOPING", 0)]}
        attrs = [
            ("IFLA_IFNAME", ifname),
            ("IFLA_MTU", mtu),
            (
                "IFLA_LINKINFO",
                {"attrs": [("IFLA_INFO_KIND", "bridge"), ("IFLA_INFO_DATA", bridge_data)]},
            ),
        ]
        if mac_address:
            attrs.append(("IFLA_ADDRESS", mac_address))
        self._new_link(attrs, f"create bridge '{ifname}'")
        index = self.link_index(ifname)
        self.set_alias(index, owner_alias(owner_id), ifname)
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
    ) -> None:
        """Create a veth pair whose peer lands directly in the sandbox, as a bridge port.

        One message creates both ends, names the peer, moves it into the sandbox and enslaves
        the host end to the bridge; a second marks it as nsnet's, turns on hairpin mode (so a
        container can reach its own published ports through the host) and sets it up. In
        between, IPv6 is turned off on the host end: a bridge port needs no address of its own,
        and each port's link-local address and routes made every later link change walk a
        routing table that grew with the number of containers.
        """
        peer_fd = os.open(peer_netns_path, os.O_RDONLY)
        try:
            peer = [
                ("IFLA_IFNAME", peer_ifname),
                ("IFLA_NET_NS_FD", peer_fd),
                ("IFLA_ADDRESS", mac_address),
                ("IFLA_MTU", mtu),
            ]
            linkinfo = [
                ("IFLA_INFO_KIND", "veth"),
                ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer})]}),
            ]
            self._new_link(
                [
                    ("IFLA_IFNAME", host_ifname),
                    ("IFLA_MTU", mtu),
                    ("IFLA_MASTER", master_index),
                    ("IFLA_GROUP", LINK_GROUP),
                    ("IFLA_LINKINFO", {"attrs": linkinfo}),
                ],
                f"create veth pair '{host_ifname}'",
            )
        finally:
            os.close(peer_fd)
        hairpin = [
            ("IFLA_INFO_SLAVE_KIND", "bridge"),
            ("IFLA_INFO_SLAVE_DATA", {"attrs": [(IFLA_BRPORT_MODE, 1)]}),
        ]
        try:
            failpoints.hit("connect.veth.mark")
            self.disable_ipv6(host_ifname)  # before it goes up, which would start IPv6 on it
            self._set_link(
                host_ifname,
                [("IFLA_IFALIAS", owner_alias(owner_id)), ("IFLA_LINKINFO", {"attrs": hairpin})],
                f"configure bridge port '{host_ifname}'",
                IFF_UP,
                IFF_UP,
            )
        except BaseException:
            self.delete_link(host_ifname)  # the pair is half made: take both ends away
            raise

    def disable_ipv6(self, ifname: str) -> None:
        """Turn IPv6 off on ``ifname`` (a kernel without IPv6 has nothing to turn off).

        Through a descriptor of this namespace's /proc/sys/net/ipv6/conf kept open: looking up
        a path under /proc/sys/net from the top walks one entry per network namespace on the
        machine at each step, which made this cost more the more containers there were.
        """
        if self._ipv6_conf is None:
            entered = namespace.entered(self.netns_path) if self.netns_path else None
            try:
                with entered or contextlib.nullcontext():
                    self._ipv6_conf = os.open(IPV6_CONF, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                return  # no IPv6 in this kernel
        try:
            handle = os.open(f"{ifname}/disable_ipv6", os.O_WRONLY, dir_fd=self._ipv6_conf)
        except FileNotFoundError as error:
            raise NotFound(f"cannot turn IPv6 off on '{ifname}': no such link") from error
        try:
            os.write(handle, b"1")
        except OSError as error:
            raise Unavailable(f"cannot turn IPv6 off on '{ifname}': {error.strerror}") from error
        finally:
            os.close(handle)

    def add_veth_pair(self, ifname: str, peer_ifname: str, peer_netns_path: str) -> None:
        """Create a plain veth pair whose peer lands in another namespace (a lab's uplink)."""
        peer_fd = os.open(peer_netns_path, os.O_RDONLY)
        try:
            peer = [("IFLA_IFNAME", peer_ifname), ("IFLA_NET_NS_FD", peer_fd)]
            linkinfo = [
                ("IFLA_INFO_KIND", "veth"),
                ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer})]}),
            ]
            self._new_link(
                [("IFLA_IFNAME", ifname), ("IFLA_LINKINFO", {"attrs": linkinfo})],
                f"create veth pair '{ifname}'",
            )
        finally:
            os.close(peer_fd)

    def set_up(self, link: int | str) -> None:
        """Set a link, given by index or name, up."""
        self._set_link(link, [], f"set link '{link}' up", IFF_UP, IFF_UP)

    def set_mac_address(self, link: int | str, mac_address: str) -> None:
        """Set a link's MAC address."""
        self._set_link(
            link, [("IFLA_ADDRESS", mac_address)], f"set the MAC address of link '{link}'"
        )

    def set_mtu(self, link: int | str, mtu: int) -> None:
        """Set a link's MTU."""
        self._set_link(link, [("IFLA_MTU", mtu)], f"set the MTU of link '{link}' to {mtu}")

    def set_down(self, link: int | str) -> None:
        """Set a link down (the kernel drops the routes through it)."""
        self._set_link(link, [], f"set link '{link}' down", 0, IFF_UP)

    def attach_to_bridge(self, link: int | str, bridge_index: int) -> None:
        """Make ``link`` an up port of the bridge at ``bridge_index``, hairpin mode on."""
        self._set_link(
            link,
            [("IFLA_MASTER", bridge_index)],
            f"attach link '{link}' to bridge {bridge_index}",
            IFF_UP,
            IFF_UP,
        )
        hairpin = [
            ("IFLA_INFO_SLAVE_KIND", "bridge"),
            ("IFLA_INFO_SLAVE_DATA", {"attrs": [(IFLA_BRPORT_MODE, 1)]}),
        ]
        self._set_link(
            link, [("IFLA_LINKINFO", {"attrs": hairpin})], f"configure bridge port '{link}'"
        )

    def rename(self, index: int, new_ifname: str) -> None:
        """Rename a link (the kernel wants it down first)."""
        self._set_link(
            index, [("IFLA_IFNAME", new_ifname)], f"rename link {index} to '{new_ifname}'"
        )

    def delete_link(self, ifname: str) -> bool:
        """Delete ``ifname``; False when it did not exist (deletion is idempotent)."""
        message = ifinfmsg()
        message["attrs"] = [("IFLA_IFNAME", ifname)]
        try:
            self.request(message, RTM_DELLINK, NLM_F_ACK)
        except NetlinkFailure as error:
            if error.errno == errno.ENODEV:
                return False
            raise translate(error, f"delete link '{ifname}'") from error
        return True

    # Addresses and routes

    def add_address(
        self, index: int, address: IPv4Address, prefixlen: int, ifname: str = ""
    ) -> None:
        """Add an IPv4 address with its broadcast address, as ``ip addr add A/N brd +``."""
        message = ifaddrmsg()
        message["family"] = AF_INET
        message["prefixlen"] = prefixlen
        message["index"] = index
        attrs = [("IFA_LOCAL", str(address)), ("IFA_ADDRESS", str(address))]
        if prefixlen < 31:
            broadcast = IPv4Address(int(address) | (0xFFFFFFFF >> prefixlen))
            attrs.append(("IFA_BROADCAST", str(broadcast)))
        message["attrs"] = attrs
        with netlink_errors(f"add address {address}/{prefixlen} to '{ifname or index}'"):
            self.request(message, RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)

    def addresses(self, index: int) -> list[tuple[str, int]]:
        """The IPv4 addresses on link ``index``, as (address, prefix length)."""
        message = ifaddrmsg()
        message["family"] = AF_INET
        with netlink_errors(f"list addresses of link {index}"):
            replies = self.request(message, RTM_GETADDR, NLM_F_DUMP)
        found = []
        for reply in replies:
            decoded = _decode(ifaddrmsg, reply)
            if decoded["index"] == index:
                found.append((decoded.get_attr("IFA_ADDRESS"), decoded["prefixlen"]))
        return found

    def add_default_route(self, gateway: IPv4Address, index: int) -> None:
        """Add the default route via ``gateway`` out of link ``index`` to the main table.

        Conflict when there is a default route already.
        """
        message = rtmsg()
        message["family"] = AF_INET
        message["table"] = RT_TABLE_MAIN
        message["proto"] = RTPROT_STATIC
        message["type"] = RTN_UNICAST
        message["attrs"] = [("RTA_GATEWAY", str(gateway)), ("RTA_OIF", index)]
        with netlink_errors(f"add default route via {gateway}"):
            self.request(message, RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)

    def _main_routes(self) -> list:
        """The main table's IPv4 routes, decoded."""
        message = rtmsg()
        message["family"] = AF_INET
        with netlink_errors("list routes"):
            replies = self.request(message, RTM_GETROUTE, NLM_F_DUMP)
        routes = [_decode(rtmsg, reply) for reply in replies]
        return [
            route
            for route in routes
            if route["table"] == RT_TABLE_MAIN or route.get_attr("RTA_TABLE") == RT_TABLE_MAIN
        ]

    def ipv4_routes(self) -> list[tuple[str, int]]:
        """Destinations (address, prefix length) of the main table's IPv4 routes."""
        return [
            (route.get_attr("RTA_DST") or "0.0.0.0", route["dst_len"])
            for route in self._main_routes()
        ]

    def default_route_link(self) -> int | None:
        """The link of the main table's IPv4 default route (0 for a multipath one), or None
        when there is none."""
        for route in self._main_routes():
            if route["dst_len"] == 0 and route["type"] == RTN_UNICAST:
                return route.get_attr("RTA_OIF") or 0
        return None

    def route_link(self, destination: IPv4Address) -> int | None:
        """The index of the link the kernel would send a packet to ``destination`` through."""
        message = rtmsg()
        message["family"] = AF_INET
        message["dst_len"] = 32
        message["attrs"] = [("RTA_DST", str(destination))]
        try:
            replies = self.request(message, RTM_GETROUTE)
        except NetlinkFailure as error:
            if error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
                return None
            raise translate(error, f"look up the route to {destination}") from error
        return _decode(rtmsg, replies[0]).get_attr("RTA_OIF")

    def address_link(self, address: IPv4Address) -> int | None:
        """The index of the link that holds ``address``, or None."""
        message = ifaddrmsg()
        message["family"] = AF_INET
        with netlink_errors("list addresses"):
            replies = self.request(message, RTM_GETADDR, NLM_F_DUMP)
        for reply in replies:
            decoded = _decode(ifaddrmsg, reply)
            if decoded.get_attr("IFA_LOCAL") == str(address):
                return decoded["index"]
        return None

    # VXLAN devices, FDB and neighbour entries (overlay networks)

    def add_vxlan(
        self,
        ifname: str,
        vni: int,
        local: IPv4Address,
        mtu: int,
        netns_path: str,
        owner_id: str,
    ) -> None:
        """Create a VXLAN device whose UDP socket lives here but which lands in ``netns_path``.

        One message creates the device in this (the underlay's) namespace, where the kernel
        opens its socket, and moves it into the overlay's namespace; the device keeps sending
        and receiving through this namespace. UDP port 4789 is set explicitly (the kernel's
        default is 8472); learning is off (FDB entries come from the registry) and proxy is on
        (ARP requests are answered from the neighbour table instead of flooded).
        """
        data = [
            ("IFLA_VXLAN_ID", vni),
            ("IFLA_VXLAN_LOCAL", str(local)),
            ("IFLA_VXLAN_PORT", VXLAN_PORT),
            ("IFLA_VXLAN_LEARNING", 0),
            ("IFLA_VXLAN_PROXY", 1),
        ]
        target = os.open(netns_path, os.O_RDONLY)
        try:
            self._new_link(
                [
                    ("IFLA_IFNAME", ifname),
                    ("IFLA_NET_NS_FD", target),
                    ("IFLA_MTU", mtu),
                    (
                        "IFLA_LINKINFO",
                        {
                            "attrs": [
                                ("IFLA_INFO_KIND", "vxlan"),
                                ("IFLA_INFO_DATA", {"attrs": data}),
                            ]
                        },
                    ),
                ],
                f"create VXLAN device '{ifname}' (VNI {vni})",
            )
        finally:
            os.close(target)

    def set_master(self, link: int | str, master_index: int) -> None:
        """Make ``link`` an up port of the bridge at ``master_index``."""
        self._set_link(
            link,
            [("IFLA_MASTER", master_index)],
            f"attach link '{link}' to bridge {master_index}",
            IFF_UP,
            IFF_UP,
        )

    def replace_fdb(self, index: int, mac_address: str, destination: IPv4Address) -> None:
        """Point ``mac_address`` at the VXLAN remote ``destination`` (``bridge fdb replace``)."""
        message = ndmsg()
        message["family"] = AF_BRIDGE
        message["ifindex"] = index
        message["state"] = NUD_PERMANENT
        message["flags"] = NTF_SELF
        message["attrs"] = [("NDA_LLADDR", mac_address), ("NDA_DST", str(destination))]
        with netlink_errors(f"add FDB entry {mac_address} dst {destination}"):
            self.request(message, RTM_NEWNEIGH, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE)

    def delete_fdb(self, index: int, mac_address: str, destination: IPv4Address) -> bool:
        """Remove an FDB entry; False when it was not there."""
        message = ndmsg()
        message["family"] = AF_BRIDGE
        message["ifindex"] = index
        message["state"] = NUD_PERMANENT
        message["flags"] = NTF_SELF
        message["attrs"] = [("NDA_LLADDR", mac_address), ("NDA_DST", str(destination))]
        return self._delete_neighbour(message, f"delete FDB entry {mac_address}")

    def fdb_entries(self, index: int) -> list[tuple[str, str | None]]:
        """The device's own FDB entries (MAC address, remote) on link ``index``."""
        message = ndmsg()
        message["family"] = AF_BRIDGE
        message["ifindex"] = index
        with netlink_errors(f"list FDB entries of link {index}"):
            replies = self.request(message, RTM_GETNEIGH, NLM_F_DUMP)
        entries = []
        for reply in replies:
            decoded = _decode(ndmsg, reply)
            if decoded["ifindex"] == index and decoded["flags"] & NTF_SELF:
                entries.append((decoded.get_attr("NDA_LLADDR"), decoded.get_attr("NDA_DST")))
        return entries

    def replace_neighbour(self, index: int, address: IPv4Address, mac_address: str) -> None:
        """A permanent ARP entry ``address`` -> ``mac_address`` on link ``index``."""
        message = ndmsg()
        message["family"] = AF_INET
        message["ifindex"] = index
        message["state"] = NUD_PERMANENT
        message["attrs"] = [("NDA_DST", str(address)), ("NDA_LLADDR", mac_address)]
        with netlink_errors(f"add neighbour {address} lladdr {mac_address}"):
            self.request(message, RTM_NEWNEIGH, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE)

    def delete_neighbour(self, index: int, address: IPv4Address) -> bool:
        """Remove a neighbour entry; False when it was not there."""
        message = ndmsg()
        message["family"] = AF_INET
        message["ifindex"] = index
        message["attrs"] = [("NDA_DST", str(address))]
        return self._delete_neighbour(message, f"delete neighbour {address}")

    def _delete_neighbour(self, message, action: str) -> bool:
        try:
            self.request(message, RTM_DELNEIGH, NLM_F_ACK)
        except NetlinkFailure as error:
            if error.errno == errno.ENOENT:
                return False
            raise translate(error, action) from error
        return True

    def neighbours(self, index: int) -> list[tuple[str, str | None, int]]:
        """IPv4 neighbour entries (address, MAC address, NUD state) on link ``index``."""
        message = ndmsg()
        message["family"] = AF_INET
        with netlink_errors(f"list neighbours of link {index}"):
            replies = self.request(message, RTM_GETNEIGH, NLM_F_DUMP)
        entries = []
        for reply in replies:
            decoded = _decode(ndmsg, reply)
            if decoded["ifindex"] == index:
                entries.append(
                    (decoded.get_attr("NDA_DST"), decoded.get_attr("NDA_LLADDR"), decoded["state"])
                )
        return entries


def _decode(message_class, data: bytes):
    message = message_class(data)
    message.decode()
    return message


def _extack(part: bytes) -> str:
    """The kernel's extended-ack text after an error header, if it sent one."""
    offset = _HEADER.size + 4 + _HEADER.size  # error code, then the echoed request header
    while offset + 4 <= len(part):
        length, attr_type = struct.unpack_from("=HH", part, offset)
        if length < 4:
            break
        if attr_type == NLMSGERR_ATTR_MSG:
            return part[offset + 4 : offset + length].rstrip(b"\0").decode(errors="replace")
        offset += (length + 3) & ~3
    return ""


def _summary(message) -> dict:
    linkinfo = message.get_attr("IFLA_LINKINFO")
    kind = linkinfo.get_attr("IFLA_INFO_KIND") if linkinfo else None
    return {
        "index": message["index"],
        "ifname": message.get_attr("IFLA_IFNAME"),
        "alias": message.get_attr("IFLA_IFALIAS") or "",
        "kind": kind,
        "master": message.get_attr("IFLA_MASTER"),
        "mac_address": message.get_attr("IFLA_ADDRESS"),
        "mtu": message.get_attr("IFLA_MTU"),
        "up": bool(message["flags"] & IFF_UP),
        "link": message.get_attr("IFLA_LINK"),
        "group": message.get_attr("IFLA_GROUP") or 0,
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


def read_sysctl(key: str, netns_path: str | Path | None = None) -> str:
    """The value of ``key`` (dotted) in the given network namespace, else the calling thread's.

    Unlike ``write_sysctl`` it raises OSError untranslated (FileNotFoundError: no such sysctl).
    """
    path = Path("/proc/sys") / key.replace(".", "/")
    context = namespace.entered(netns_path) if netns_path else contextlib.nullcontext()
    with context, open(path) as handle:
        return handle.read().strip()
