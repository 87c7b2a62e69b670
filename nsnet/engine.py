"""The engine: networks, containers and endpoints as transactions over the store and kernel.

Every public method is one operation: it completes, or it raises ``NsnetError`` and leaves
nothing behind. The engine is not thread-safe by design: the daemon calls it from one worker
thread (the pyroute2 handles it keeps are bound to that thread).
"""

from nsnet.models import Container, ContainerCreate, Endpoint, Network, NetworkCreate
from nsnet.paths import Paths


class Engine:
    def __init__(self, paths: Paths | None = None) -> None:
        self.paths = paths or Paths.from_env()

    def open(self) -> None:
        """Open the store, make the built-in networks, and reconcile the kernel with the store."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # Networks

    def create_network(self, request: NetworkCreate) -> Network:
        raise NotImplementedError

    def list_networks(self) -> list[Network]:
        raise NotImplementedError

    def get_network(self, ref: str) -> Network:
        """A network by full id, name, or unique id prefix (in Docker's order)."""
        raise NotImplementedError

    def remove_network(self, ref: str) -> None:
        raise NotImplementedError

    def prune_networks(self) -> list[str]:
        """Remove user networks with no endpoints; return their names."""
        raise NotImplementedError

    def network_endpoints(self, network_id: str) -> list[tuple[Container, Endpoint]]:
        raise NotImplementedError

    def connect(
        self,
        network_ref: str,
        container_ref: str,
        ip_address: str | None = None,
        aliases: list[str] | None = None,
    ) -> Endpoint:
        raise NotImplementedError

    def disconnect(self, network_ref: str, container_ref: str, force: bool = False) -> None:
        raise NotImplementedError

    # Containers

    def create_container(self, request: ContainerCreate) -> Container:
        raise NotImplementedError

    def list_containers(self, all: bool = False) -> list[Container]:
        raise NotImplementedError

    def get_container(self, ref: str) -> Container:
        """A container by full id, name, or unique id prefix."""
        raise NotImplementedError

    def container_endpoints(self, container_id: str) -> list[tuple[Network, Endpoint]]:
        raise NotImplementedError

    def start_container(self, ref: str) -> Container:
        """Start the container's command detached, supervised by the daemon (``run -d``)."""
        raise NotImplementedError

    def enter_command(self, ref: str, command: list[str]) -> list[str]:
        """The argv that runs ``command`` inside the container's sandbox (run, exec)."""
        raise NotImplementedError

    def attach_process(self, ref: str, pid: int) -> Container:
        """Record that a client started the container's process itself (foreground run)."""
        raise NotImplementedError

    def process_exited(self, ref: str, exit_code: int) -> Container:
        """Record the exit of a client-started process."""
        raise NotImplementedError

    def stop_container(self, ref: str, timeout: float = 10) -> Container:
        raise NotImplementedError

    def remove_container(self, ref: str, force: bool = False) -> None:
        raise NotImplementedError

    def logs(self, ref: str) -> bytes:
        raise NotImplementedError
