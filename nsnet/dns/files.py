"""A container's /etc/resolv.conf and /etc/hosts: reading the host's, writing the container's.

The container's files live in its directory under the state directory and are bind-mounted over
/etc/resolv.conf and /etc/hosts in the container's mount namespace, made with its sandbox
(``ensure_container_files`` makes them, empty, before that). A bind mount pins the file's
inode, so a rewrite must change the file in place: ``write_in_place`` writes and truncates,
never renames.

Docker's rules, reproduced:

- on a user-defined network the container asks the embedded server: ``nameserver 127.0.0.11``,
  the host's search domains and options plus ``ndots:0`` (unless an ``ndots`` option is already
  there); ``--dns`` servers become the embedded server's upstreams for that container,
  ``--dns-search`` and ``--dns-option`` replace the host's search domains and options;
- on the default bridge there is no embedded server: the host's servers, loopback ones left out
  (they would be the container's own loopback), or ``--dns``; when nothing is left, Google's
  public servers, as Docker does;
- the host's /etc/resolv.conf naming only systemd-resolved's stub (127.0.0.53) is replaced by
  /run/systemd/resolve/resolv.conf, which lists the real servers.
"""

import errno
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

from nsnet.dns.resolver import Upstream
from nsnet.errors import InvalidArgument, Unavailable

EMBEDDED_DNS_ADDRESS = "127.0.0.11"
HOST_RESOLV_CONF = Path("/etc/resolv.conf")
SYSTEMD_RESOLVED_STUB = "127.0.0.53"
SYSTEMD_RESOLVED_UPSTREAM_CONF = Path("/run/systemd/resolve/resolv.conf")
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")  # Docker's default when the host has none
EMBEDDED_OPTION = "ndots:0"
NO_SEARCH = "."  # Docker's --dns-search value meaning "no search domains"
MAX_NAMESERVERS = 3  # the C library reads no more
RESOLV_CONF_FILE = "resolv.conf"  # the container's files, in its directory
HOSTS_FILE = "hosts"

HOSTS_PREAMBLE = (
    ("127.0.0.1", "localhost"),
    ("::1", "localhost ip6-localhost ip6-loopback"),
    ("fe00::0", "ip6-localnet"),
    ("ff00::0", "ip6-mcastprefix"),
    ("ff02::1", "ip6-allnodes"),
    ("ff02::2", "ip6-allrouters"),
)


@dataclass
class ResolvConf:
    """The parts of a resolv.conf that nsnet reads or writes."""

    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def upstreams(self) -> list[Upstream]:
        """The non-loopback name servers, as upstreams of the embedded server."""
        return [Upstream.parse(server) for server in non_loopback(self.nameservers)]


@dataclass(frozen=True)
class ContainerDns:
    """What a container gets: its resolv.conf text, and the embedded server's upstreams for it.

    ``upstreams`` is None when the container did not name its own servers (``--dns``): the
    embedded server then uses its defaults. It is always None on the default bridge, whose
    containers ask the servers in ``text`` themselves.
    """

    text: str
    upstreams: tuple[Upstream, ...] | None


def parse_resolv_conf(text: str) -> ResolvConf:
    """Read nameserver, search/domain and options lines; the last search or domain wins."""
    conf = ResolvConf()
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        keyword, values = words[0], words[1:]
        if keyword == "nameserver" and values:
            conf.nameservers.append(values[0])
        elif keyword in ("search", "domain"):
            conf.search = list(values) if keyword == "search" else values[:1]
        elif keyword == "options":
            conf.options.extend(values)
    return conf


def is_loopback(nameserver: str) -> bool:
    """True for 127.0.0.0/8 and ::1; a name that is no address is not loopback."""
    try:
        return ip_address(nameserver.split("%")[0]).is_loopback
    except ValueError:
        return False


def non_loopback(nameservers: Iterable[str]) -> list[str]:
    """The servers a process in another namespace can reach: loopback ones left out."""
    return [server for server in nameservers if not is_loopback(server)]


def read_host_resolv_conf(path: Path = HOST_RESOLV_CONF) -> ResolvConf:
    """The host's resolver configuration; a missing file is an empty configuration.

    When ``path`` names only systemd-resolved's stub, the servers behind the stub are read
    from /run/systemd/resolve/resolv.conf (when it exists), as Docker does.
    """
    conf = _read(path)
    if conf.nameservers == [SYSTEMD_RESOLVED_STUB] and SYSTEMD_RESOLVED_UPSTREAM_CONF.exists():
        behind = _read(SYSTEMD_RESOLVED_UPSTREAM_CONF)
        conf.nameservers = behind.nameservers
    return conf


def _read(path: Path) -> ResolvConf:
    try:
        return parse_resolv_conf(path.read_text())
    except FileNotFoundError:
        return ResolvConf()
    except OSError as error:
        raise Unavailable(f"cannot read file '{path}': {error.strerror}") from error


def default_upstreams(host: ResolvConf) -> list[Upstream]:
    """The embedded server's default upstreams: the host's non-loopback servers, else Docker's
    fallback (8.8.8.8, 8.8.4.4). A daemon option given explicitly replaces these."""
    servers = non_loopback(host.nameservers) or list(FALLBACK_NAMESERVERS)
    return [Upstream.parse(server) for server in servers]


def render_resolv_conf(
    nameservers: Sequence[str], search: Sequence[str] = (), options: Sequence[str] = ()
) -> str:
    """resolv.conf text: a comment saying who wrote it, then nameserver, search, options."""
    lines = ["# Generated by nsnet; rewritten when the container's networks change."]
    lines += [f"nameserver {server}" for server in nameservers]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def container_resolv_conf(
    host: ResolvConf,
    *,
    embedded: bool,
    dns: Sequence[str] = (),
    dns_search: Sequence[str] = (),
    dns_options: Sequence[str] = (),
) -> ContainerDns:
    """The resolv.conf of a container and the upstreams the embedded server uses for it.

    ``embedded`` is true for a container on a user-defined network (served at 127.0.0.11),
    false on the default bridge. ``dns``, ``dns_search``, ``dns_options`` are Docker's
    ``--dns``, ``--dns-search`` and ``--dns-option``.
    """
    for server in dns:
        _check_address(server, "--dns")

    if dns_search:
        search = [] if list(dns_search) == [NO_SEARCH] else list(dns_search)
    else:
        search = list(host.search)
    options = list(dns_options) if dns_options else list(host.options)

    if embedded:
        if not any(option.startswith("ndots:") for option in options):
            options.append(EMBEDDED_OPTION)
        upstreams = tuple(Upstream.parse(server) for server in dns) if dns else None
        text = render_resolv_conf([EMBEDDED_DNS_ADDRESS], search, options)
        return ContainerDns(text=text, upstreams=upstreams)

    nameservers = list(dns) or non_loopback(host.nameservers) or list(FALLBACK_NAMESERVERS)
    text = render_resolv_conf(nameservers[:MAX_NAMESERVERS], search, options)
    return ContainerDns(text=text, upstreams=None)


def _check_address(value: str, flag: str) -> None:
    try:
        ip_address(value.split("%")[0])
    except ValueError as error:
        raise InvalidArgument(f"cannot use {flag} '{value}': not an IP address") from error


def parse_add_host(text: str) -> tuple[str, str]:
    """Docker's ``--add-host name:address`` (an IPv6 address keeps its colons)."""
    name, separator, address = text.partition(":")
    address = address.strip("[]")
    if not separator or not name or not address:
        raise InvalidArgument(f"cannot parse --add-host '{text}': expected name:address")
    _check_address(address, "--add-host")
    return name, address


def render_hosts(
    name: str,
    hostname: str,
    addresses: Iterable[str],
    extra_hosts: Iterable[tuple[str, str]] = (),
) -> str:
    """/etc/hosts text: localhost and IPv6 lines, ``--add-host`` entries, then one line per
    address of the container naming its hostname and, when different, its name."""
    lines = [f"{address}\t{names}" for address, names in HOSTS_PREAMBLE]
    lines += [f"{address}\t{host_name}" for host_name, address in extra_hosts]
    own_names = " ".join(dict.fromkeys(value for value in (hostname, name) if value))
    lines += [f"{address}\t{own_names}" for address in addresses]
    return "\n".join(lines) + "\n"


def write_in_place(path: str | os.PathLike, text: str) -> None:
    """Replace the contents of ``path`` keeping its inode (created when missing).

    Writes first and truncates after, so a reader never sees an empty file; a rename would
    leave a bind mount of the file showing the old inode.
    """
    data = text.encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise Unavailable(f"cannot write file '{path}': {error.strerror}") from error
    try:
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], written)
        os.ftruncate(fd, len(data))
    except OSError as error:
        code = errno.errorcode.get(error.errno, "")
        raise Unavailable(f"cannot write file '{path}': {error.strerror} ({code})") from error
    finally:
        os.close(fd)


def ensure_container_files(directory: Path) -> tuple[Path, Path]:
    """The container's resolv.conf and hosts in ``directory``, made empty when missing.

    They must exist before its mount namespace binds them; their text comes later, written in
    place. Existing contents are kept.
    """
    paths = (directory / RESOLV_CONF_FILE, directory / HOSTS_FILE)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for path in paths:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    except OSError as error:
        raise Unavailable(
            f"cannot create file '{error.filename or directory}': {error.strerror}"
        ) from error
    return paths
