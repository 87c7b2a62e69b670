"""What the engine tells the embedded DNS about containers, and each container's own files.

The engine calls ``update`` whenever a container's endpoints change (create, connect,
disconnect, restart) and ``forget`` when it goes. From the container's endpoints the registry
derives everything else: the index entries (names on user-defined networks only, as in
Docker: the default bridge has no name resolution), the scope the server answers with, whether
the container's namespace needs a listener at 127.0.0.11, and the text of its resolv.conf and
hosts files, which are rewritten in place so that bind mounts of them stay valid.
"""

import logging
from pathlib import Path

from nsnet.dns.files import (
    FALLBACK_NAMESERVERS,
    HOSTS_FILE,
    RESOLV_CONF_FILE,
    ContainerDns,
    container_resolv_conf,
    default_upstreams,
    non_loopback,
    parse_add_host,
    parse_resolv_conf,
    read_host_resolv_conf,
    render_hosts,
    write_in_place,
)
from nsnet.dns.index import NameIndex
from nsnet.dns.resolver import Resolver, SandboxScope, Upstream
from nsnet.dns.server import DnsServer
from nsnet.errors import NsnetError
from nsnet.models import GATEWAY_BRIDGE_NETWORK, Container, Endpoint, Network

log = logging.getLogger(__name__)

DEFAULT_BRIDGE = "bridge"


class DnsRegistry:
    def __init__(self, servers: list[str] | None = None) -> None:
        """``servers``: the daemon's upstream name servers; None means the host's."""
        self.host_conf = read_host_resolv_conf()
        self.servers = list(servers or [])
        upstreams = [Upstream.parse(server) for server in self.servers] or default_upstreams(
            self.host_conf
        )
        self.server = DnsServer(Resolver(NameIndex(), upstreams))
        self._scopes: dict[str, SandboxScope] = {}
        self._indexed: dict[str, set[str]] = {}  # container id -> endpoint ids in the index

    @property
    def warning(self) -> str | None:
        """Why containers' names go to Docker's public fallback servers, if they do."""
        if self.servers or non_loopback(self.host_conf.nameservers):
            return None
        return (
            "the host's resolv.conf lists no name server that containers can reach: they use "
            f"{', '.join(FALLBACK_NAMESERVERS)}, as Docker does (give nsnetd --dns to choose)"
        )

    def start(self) -> None:
        """Start the DNS server's event loop in a thread of its own."""
        self.server.start()

    def stop(self) -> None:
        """Stop the DNS server, closing every sandbox's listener."""
        self.server.stop()

    def update(
        self, container: Container, endpoints: list[tuple[Network, Endpoint]], files_dir: Path
    ) -> None:
        """Bring the index, the listener and the files in line with the container's endpoints
        (and its state: an exited container's names leave the index)."""
        named = [(network, endpoint) for network, endpoint in endpoints if _named(network)]
        dns = self._container_dns(container, embedded=bool(named))

        # As in Docker, a container whose process has exited is not found by name.
        resolvable = named if container.state != "exited" else []
        current = {endpoint.id for _, endpoint in resolvable}
        for endpoint_id in self._indexed.get(container.id, set()) - current:
            self.server.index.remove(endpoint_id)
        for network, endpoint in resolvable:
            self.server.index.add(
                network.id,
                endpoint.id,
                [container.name, container.id[:12], *endpoint.aliases],
                endpoint.address,
                network_name=network.name,
                ptr_name=f"{container.name}.{network.name}",
            )
        self._indexed[container.id] = current

        owns_namespace = container.network_mode != "host" and not container.shares_namespace_of
        if named and owns_namespace:
            self._scopes[container.id] = SandboxScope(
                network_ids=frozenset(network.id for network, _ in named),
                forwarding=any(not network.internal for network, _ in named),
                upstreams=tuple(Upstream.parse(s) for s in container.dns) or None,
            )
            if container.id not in self.server.sandbox_ids():
                self.server.add_sandbox(
                    container.id, container.netns_path, self._scope_function(container.id)
                )
        elif container.id in self._scopes:
            # The listener stays until the container goes (opening one costs milliseconds);
            # with no user-defined network left it answers nothing and forwards nothing.
            self._scopes[container.id] = _NOTHING

        if container.network_mode == "host":
            return  # the host's own files
        files_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_in_place(files_dir / RESOLV_CONF_FILE, dns.text)
        extra_hosts = [parse_add_host(entry) for entry in container.extra_hosts]
        addresses = [str(endpoint.address) for _, endpoint in endpoints]
        write_in_place(
            files_dir / HOSTS_FILE,
            render_hosts(container.name, container.hostname, addresses, extra_hosts),
        )

    def resolver_settings(
        self, container: Container, endpoints: list[tuple[Network, Endpoint]]
    ) -> dict[str, list[str]]:
        """The resolvers a CNI result's ``dns`` gives: 127.0.0.11 when it listens there, else
        the servers it would forward to (the namespace's port 53 may be the pod's own)."""
        listening = container.id in self.server.sandbox_ids()
        dns = self._container_dns(
            container,
            embedded=listening and any(_named(network) for network, _ in endpoints),
        )
        conf = parse_resolv_conf(dns.text)
        return {"nameservers": conf.nameservers, "search": conf.search, "options": conf.options}

    def _container_dns(self, container: Container, embedded: bool) -> ContainerDns:
        return container_resolv_conf(
            self.host_conf,
            embedded=embedded,
            dns=container.dns or self.servers,
            dns_search=container.dns_search,
            dns_options=container.dns_options,
        )

    def _scope_function(self, container_id: str):
        # Runs on the DNS thread for every query: a dictionary read, never the store.
        def scope() -> SandboxScope:
            return self._scopes.get(container_id, _NOTHING)

        return scope

    def forget(self, container: Container) -> None:
        """Stop answering for a container: before its sandbox goes (a socket keeps it alive)."""
        for endpoint_id in self._indexed.pop(container.id, set()):
            self.server.index.remove(endpoint_id)
        if self._scopes.pop(container.id, None) is not None:
            try:
                self.server.remove_sandbox(container.id)
            except NsnetError as error:
                log.warning("dns: cannot stop serving %s: %s", container.name, error)


_NOTHING = SandboxScope(network_ids=frozenset(), forwarding=False)


def _named(network: Network) -> bool:
    """Whether containers on ``network`` find each other by name (user-defined networks).

    Not on the gateway bridge of overlay containers: its addresses reach no other container.
    """
    if network.name in (DEFAULT_BRIDGE, GATEWAY_BRIDGE_NETWORK):
        return False
    return network.driver in ("bridge", "overlay")


def check_container_dns(container: Container) -> None:
    """Refuse malformed --dns, --add-host values before anything is made."""
    container_resolv_conf(read_host_resolv_conf(), embedded=False, dns=container.dns)
    for entry in container.extra_hosts:
        parse_add_host(entry)
