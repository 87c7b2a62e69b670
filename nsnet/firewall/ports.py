"""Host ports of published ports: chosen from a range, or checked to be free.

The ``-p`` syntax is the CLI's (``nsnet.cli.parse_publish``), which sends Docker's
PortBindings; this module works on the bindings the engine derives from them. Host ports are
read in the namespace of the calling thread: ``ip_local_port_range`` from /proc/sys and
listening sockets through sock_diag (pyroute2's ``DiagSocket``), both of which follow the
thread's network namespace.
"""

import errno
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from pathlib import Path

from pyroute2 import DiagSocket
from pyroute2.netlink.diag import SS_CLOSE, SS_LISTEN
from pyroute2.netlink.exceptions import NetlinkError

from nsnet.errors import Conflict, InvalidArgument, Unavailable
from nsnet.firewall.ruleset import ANY_ADDRESS, Binding

LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_IPPROTO_SCTP = 132

# The socket state that holds a port: a listening TCP/SCTP socket, an unconnected UDP one.
_HOLDING_STATE = {"tcp": SS_LISTEN, "udp": SS_CLOSE, "sctp": SS_LISTEN}
_IP_PROTOCOL = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "sctp": _IPPROTO_SCTP}


@dataclass(frozen=True)
class Listener:
    """A socket that holds a host port in the current namespace."""

    address: IPv4Address  # 0.0.0.0 for a wildcard (IPv4 or dual-stack) socket
    port: int
    protocol: str
    inode: int


def local_port_range() -> tuple[int, int]:
    """The current namespace's ``net.ipv4.ip_local_port_range``."""
    first, last = LOCAL_PORT_RANGE.read_text().split()
    return int(first), int(last)


def check_host_address(address: IPv4Address, spec: str = "") -> None:
    """Refuse a host address that no interface of the current namespace carries.

    Docker's proxy fails to bind such an address; nsnet has no proxy, so it asks the kernel
    the same question: a socket bound to it (port 0, closed at once). 127.0.0.0/8 is local
    as a whole. ``spec`` names the port being published, for the message.
    """
    if address == ANY_ADDRESS:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError as error:
            if error.errno != errno.EADDRNOTAVAIL:
                raise
            raise InvalidArgument(
                f"cannot publish port '{spec or address}': {address} is not an address of "
                "this host (no interface in its namespace has it)"
            ) from error


def check_protocol_supported(protocol: str, spec: str = "") -> None:
    """Raise Unavailable when the running kernel cannot carry ``protocol`` (SCTP may be absent).

    ``spec`` names the port being published, for the message.
    """
    if protocol != "sctp":
        return
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, _IPPROTO_SCTP).close()
    except OSError as error:
        if error.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT, errno.EAFNOSUPPORT):
            raise Unavailable(
                f"cannot publish port '{spec or protocol}': this kernel has no SCTP support "
                "(CONFIG_IP_SCTP)"
            ) from error
        raise


def listeners(protocol: str) -> list[Listener]:
    """Sockets of the current namespace that hold a port of ``protocol``."""
    found = []
    with DiagSocket() as diag:
        diag.bind()
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                messages = diag.get_sock_stats(
                    family=family,
                    protocol=_IP_PROTOCOL[protocol],
                    states=1 << _HOLDING_STATE[protocol],
                )
            except NetlinkError as error:
                # No diag module for this protocol (SCTP without sctp_diag): nothing to see.
                if error.code in (errno.ENOENT, errno.EOPNOTSUPP, errno.EINVAL):
                    continue
                raise
            for message in messages:
                if protocol == "udp" and message["idiag_dport"] != 0:
                    continue  # a connected UDP socket holds no port for others
                address = _ipv4_view(message["idiag_src"])
                if address is None:
                    continue  # bound to an IPv6-only address: not reachable through IPv4
                found.append(
                    Listener(address, message["idiag_sport"], protocol, message["idiag_inode"])
                )
    return found


def _ipv4_view(text: str) -> IPv4Address | None:
    address = ip_address(text)
    if isinstance(address, IPv4Address):
        return address
    if address.is_unspecified:
        return ANY_ADDRESS  # "::" also takes IPv4 unless IPV6_V6ONLY, which diag does not show
    return address.ipv4_mapped


def _overlaps(first: IPv4Address, second: IPv4Address) -> bool:
    return first == second or ANY_ADDRESS in (first, second)


def choose_host_port(
    protocol: str,
    host_ip: IPv4Address,
    published: Iterable[Binding],
    first: int = 0,
    last: int = 0,
    sockets: Iterable[Listener] | None = None,
) -> int:
    """The lowest host port of ``first``-``last`` (default ip_local_port_range) that is free.

    Free means: not published on an overlapping host address and held by no socket.
    ``sockets`` are the namespace's ``listeners(protocol)`` when the caller has read them.
    """
    if not first:
        first, last = local_port_range()
    taken = {
        binding.host_port
        for binding in published
        if binding.protocol == protocol and _overlaps(binding.host_ip, host_ip)
    }
    if sockets is None:
        sockets = listeners(protocol)
    taken |= {listener.port for listener in sockets if _overlaps(listener.address, host_ip)}
    for port in range(first, last + 1):
        if port not in taken:
            return port
    raise Conflict(
        f"cannot choose host port '{host_ip}:{first}-{last}/{protocol}': every port is taken"
    )


def port_holder(
    protocol: str,
    host_ip: IPv4Address,
    host_port: int,
    published: Mapping[Binding, str],
    sockets: Iterable[Listener] | None = None,
) -> str | None:
    """Who holds ``host_ip:host_port/protocol``, or None when it is free.

    ``published`` maps each published binding to its owner's name (a container);
    ``sockets`` are the namespace's ``listeners(protocol)`` when the caller has read them.
    """
    for binding, owner in published.items():
        if (
            binding.protocol == protocol
            and binding.host_port == host_port
            and _overlaps(binding.host_ip, host_ip)
        ):
            return f"container '{owner}' ({binding.host_ip}:{host_port}/{protocol})"

    if sockets is None:
        sockets = listeners(protocol)
    for listener in sockets:
        if listener.port == host_port and _overlaps(listener.address, host_ip):
            where = f"{listener.address}:{host_port}/{protocol}"
            process = _socket_owner(listener.inode)
            if process is None:
                return f"a socket listening on {where}"
            pid, command = process
            return f"process {pid} ({command}) listening on {where}"
    return None


def check_host_port_free(
    protocol: str,
    host_ip: IPv4Address,
    host_port: int,
    published: Mapping[Binding, str],
    sockets: Iterable[Listener] | None = None,
) -> None:
    """Raise Conflict naming who holds ``host_ip:host_port/protocol`` if anyone does."""
    holder = port_holder(protocol, host_ip, host_port, published, sockets)
    if holder is not None:
        raise Conflict(
            f"cannot publish port '{host_ip}:{host_port}/{protocol}': already held by {holder}"
        )


def _socket_owner(inode: int) -> tuple[int, str] | None:
    """The pid and command of a process holding socket ``inode`` (socket inodes are global)."""
    target = f"socket:[{inode}]"
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            for descriptor in os.scandir(f"/proc/{entry.name}/fd"):
                if os.readlink(descriptor.path) == target:
                    command = Path(f"/proc/{entry.name}/comm").read_text().strip()
                    return int(entry.name), command
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return None
