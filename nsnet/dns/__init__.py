"""The embedded DNS server that containers on user-defined networks ask at 127.0.0.11.

    index.NameIndex      names -> addresses, scoped by network; local and remote endpoints
    resolver.Resolver    the answer to one query: local names, NODATA, PTR, or forwarding
    server.DnsServer     asyncio UDP/TCP service of the listener sockets of every sandbox
    files                the container's resolv.conf and hosts, rewritten in place

The engine feeds the index (an endpoint's names on its network) and tells the server which
sandboxes to serve; the daemon owns the server and its event loop.
"""

from nsnet.dns.files import (
    ContainerDns,
    ResolvConf,
    container_resolv_conf,
    default_upstreams,
    parse_add_host,
    parse_resolv_conf,
    read_host_resolv_conf,
    render_hosts,
    render_resolv_conf,
    write_in_place,
)
from nsnet.dns.index import LOCAL_ORIGIN, IndexEntry, NameIndex
from nsnet.dns.resolver import (
    MAX_UPSTREAMS,
    UPSTREAM_TIMEOUT_SECONDS,
    Resolver,
    SandboxScope,
    Upstream,
)
from nsnet.dns.server import LISTEN_ADDRESS, DnsServer, open_listener_sockets

__all__ = [
    "LISTEN_ADDRESS",
    "LOCAL_ORIGIN",
    "MAX_UPSTREAMS",
    "UPSTREAM_TIMEOUT_SECONDS",
    "ContainerDns",
    "DnsServer",
    "IndexEntry",
    "NameIndex",
    "ResolvConf",
    "Resolver",
    "SandboxScope",
    "Upstream",
    "container_resolv_conf",
    "default_upstreams",
    "open_listener_sockets",
    "parse_add_host",
    "parse_resolv_conf",
    "read_host_resolv_conf",
    "render_hosts",
    "render_resolv_conf",
    "write_in_place",
]
