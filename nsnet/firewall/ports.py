"""Published ports: ``-p`` specs parsed as Docker parses them, and host ports chosen or checked.

A spec is ``[hostIP:][hostPort:]containerPort[/tcp|udp|sctp]`` where either port may be a
range ``first-last``. Equal-size ranges pair up (``8000-8002:80-82``); a host range with a
single container port (``8000-8010:80``) means "any free port of that range", as in Docker.

Host ports are read in the namespace of the calling thread: ``ip_local_port_range`` from
/proc/sys and listening sockets through sock_diag (pyroute2's ``DiagSocket``), both of which
follow the thread's network namespace.
"""

import errno
import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from pathlib import Path

from pyroute2 import DiagSocket
from pyroute2.netlink.diag import SS_CLOSE, SS_LISTEN
from pyroute2.netlink.exceptions import NetlinkError

from nsnet.errors import Conflict, InvalidArgument, Unavailable
from nsnet.firewall.ruleset import ANY_ADDRESS, PROTOCOLS, Binding

LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_PORT = re.compile(r"^[0-9]+$")
_IPPROTO_SCTP = 132

# The socket state that holds a port: a listening TCP/SCTP socket, an unconnected UDP one.
_HOLDING_STATE = {"tcp": SS_LISTEN, "udp": SS_CLOSE, "sctp": SS_LISTEN}
_IP_PROTOCOL = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "sctp": _IPPROTO_SCTP}


@dataclass(frozen=True)
class PortSpec:
    """One container port of a ``-p`` spec and the host port(s) it may be published on."""

    container_port: int
    protocol: str  # tcp | udp | sctp
    host_ip: IPv4Address  # 0.0.0.0 when the spec names none
    host_port_first: int = 0  # 0: any free port of ip_local_port_range
    host_port_last: int = 0  # above host_port_first: any free port of that range

    @property
    def host_port_fixed(self) -> bool:
        """Whether the spec names exactly one host port."""
        return self.host_port_first != 0 and self.host_port_last == self.host_port_first


@dataclass(frozen=True)
class Listener:
    """A socket that holds a host port in the current namespace."""

    address: IPv4Address  # 0.0.0.0 for a wildcard (IPv4 or dual-stack) socket
    port: int
    protocol: str
    inode: int


def parse_port_spec(spec: str) -> list[PortSpec]:
    """The container ports of one ``-p`` spec; InvalidArgument names what is wrong."""

    def invalid(cause: str) -> InvalidArgument:
        return InvalidArgument(f"cannot publish port '{spec}': {cause}")

    # Like Docker: the last part is the container port, the one before it the host port,
    # and whatever precedes them the host address.
    parts = spec.split(":")
    container_part = parts[-1]
    host_port_part = parts[-2] if len(parts) >= 2 else ""
    host_ip_part = ":".join(parts[:-2])

    container_part, protocol = _split_protocol(container_part)
    if not container_part:
        raise invalid("no container port given")
    if protocol not in PROTOCOLS:
        raise invalid(f"invalid protocol '{protocol}' (tcp, udp or sctp)")

    host_ip = _parse_host_ip(host_ip_part, invalid)
    container_first, container_last = _parse_range(container_part, "container port", invalid)
    if container_first == 0:
        raise invalid("container port 0 is not a port")
    host_first = host_last = 0
    if host_port_part:
        host_first, host_last = _parse_range(host_port_part, "host port", invalid)

    container_count = container_last - container_first
    if host_port_part and container_count != host_last - host_first and container_count != 0:
        raise invalid(
            f"container ports '{container_part}' and host ports '{host_port_part}' "
            "are ranges of different sizes"
        )

    specs = []
    for offset in range(container_count + 1):
        if container_count == 0:
            first, last = host_first, host_last
        elif host_first:
            first = last = host_first + offset
        else:
            first = last = 0
        specs.append(PortSpec(container_first + offset, protocol, host_ip, first, last))
    return specs


def parse_expose(spec: str) -> list[tuple[int, str]]:
    """The (container port, protocol) pairs of one ``--expose`` value, e.g. ``8000-8002/udp``."""

    def invalid(cause: str) -> InvalidArgument:
        return InvalidArgument(f"cannot expose port '{spec}': {cause}")

    ports, protocol = _split_protocol(spec)
    if not ports:
        raise invalid("no port given")
    if protocol not in PROTOCOLS:
        raise invalid(f"invalid protocol '{protocol}' (tcp, udp or sctp)")
    first, last = _parse_range(ports, "port", invalid)
    if first == 0:
        raise invalid("port 0 is not a port")
    return [(port, protocol) for port in range(first, last + 1)]


def _split_protocol(text: str) -> tuple[str, str]:
    port, _, protocol = text.partition("/")
    return port, (protocol.lower() or "tcp")


def _parse_host_ip(text: str, invalid) -> IPv4Address:
    if not text:
        return ANY_ADDRESS
    if text.startswith("["):
        raise invalid("IPv6 is not supported yet")
    try:
        address = ip_address(text)
    except ValueError:
        raise invalid(f"invalid host IP address '{text}'") from None
    if not isinstance(address, IPv4Address):
        raise invalid("IPv6 is not supported yet")
    return address


def _parse_range(text: str, what: str, invalid) -> tuple[int, int]:
    first_text, separator, last_text = text.partition("-")
    if not _PORT.match(first_text) or (separator and not _PORT.match(last_text)):
        raise invalid(f"invalid {what} '{text}'")
    first = int(first_text)
    last = int(last_text) if separator else first
    if first > 65535 or last > 65535:
        raise invalid(f"invalid {what} '{text}': ports go up to 65535")
    if last < first:
        raise invalid(f"invalid {what} range '{text}'")
    return first, last


# Host ports ------------------------------------------------------------------------------


def local_port_range() -> tuple[int, int]:
    """The current namespace's ``net.ipv4.ip_local_port_range``."""
    first, last = LOCAL_PORT_RANGE.read_text().split()
    return int(first), int(last)


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
