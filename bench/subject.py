"""The contract every measured system follows, so that each stage is written once.

A subject lives in one host namespace (with an outside namespace beside it) made by the
stage's ``World``. Timed operations return seconds, taken around the operation alone. An
operation a subject does not have raises ``NotSupported`` (the table shows "—"); one that
cannot run on this machine or in this version raises ``Unavailable`` (the table shows "n/a"
and the reason).
"""

from dataclasses import dataclass, field

from bench.world import World
from tests.support.topology import HostWithOutside

# Interfaces through which an operation is timed.
API = "api"  # raw HTTP on the daemon's unix socket
CLI = "cli"  # the command line program, exec'd
ENGINE = "engine"  # nsnet's Engine, in-process
PLUGIN = "plugin"  # a CNI plugin, exec'd as a runtime does

CONTAINER_PORT = 7000  # where listeners inside containers wait
IPERF_PORT = 5201


class NotSupported(Exception):
    """The subject has no such operation (e.g. CNI has no network objects)."""


class Unavailable(Exception):
    """The operation exists but cannot be measured here; the message says why."""


@dataclass
class Container:
    """A container as a stage sees it: a handle the subject understands, and where it lives."""

    handle: str
    name: str
    netns_path: str = ""
    addresses: dict[str, str] = field(default_factory=dict)  # network -> IPv4 address
    extra: dict = field(default_factory=dict)


class Subject:
    """A system under measurement. Subclasses implement what they support."""

    name = ""  # nsnet, engine, cni, docker
    column = ""  # the table column: nsnet, CNI, Docker
    interfaces: tuple[str, ...] = ()  # interfaces for attach/detach and network create/rm
    container_interfaces: tuple[str, ...] = ()  # interfaces for container create/rm
    primary = ""  # the interface used for the scale and port stages
    measures_traffic = True  # whether the ports stage sends traffic through this subject
    serves_dns = False  # an embedded DNS server at 127.0.0.11 on user-defined networks

    def __init__(self, world: World, topology: HostWithOutside) -> None:
        self.world = world
        self.topology = topology

    # Life cycle

    def start(self) -> None:
        """Start daemons, agents; raise ``Unavailable`` when the subject cannot run here."""

    def daemon_pids(self) -> list[int]:
        """The daemon's own processes (for memory and process counts); [] if none."""
        return []

    # Networks

    def create_network(self, name: str, interface: str) -> tuple[str, float]:
        """Create a bridge network; return its handle and the seconds taken."""
        raise NotSupported(f"{self.column} has no network objects")

    def remove_network(self, handle: str, interface: str) -> float:
        raise NotSupported(f"{self.column} has no network objects")

    def bench_network(self, name: str) -> str:
        """The network the stages attach to (created untimed); its handle."""
        handle, _ = self.create_network(name, self.primary)
        return handle

    # Containers and endpoints

    def create_target(self, name: str) -> Container:
        """A running container on the default network, to be attached to other networks."""
        raise NotImplementedError

    def attach(self, network: str, container: Container, interface: str) -> float:
        """Add one endpoint on ``network`` to the running ``container``."""
        raise NotImplementedError

    def detach(self, network: str, container: Container, interface: str) -> float:
        raise NotImplementedError

    def create_container(
        self,
        name: str,
        network: str,
        ports: list[tuple[int, int]],
        interface: str,
        run: bool = False,
    ) -> tuple[Container, float]:
        """A container with one endpoint on ``network`` publishing (host, container) ports.

        With ``run`` its process is started too (``docker run -d``).
        """
        raise NotImplementedError

    def remove_container(self, container: Container, interface: str) -> float:
        raise NotImplementedError

    def create_fillers(self, network: str, names: list[str]) -> None:
        """Containers with one endpoint each on ``network``, untimed, as fast as possible."""
        for name in names:
            self.create_container(name, network, [], self.primary)
