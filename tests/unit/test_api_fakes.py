"""A fake engine and a real server around it, for the API and CLI unit tests.

``FakeEngine`` keeps networks and containers in dictionaries and answers like the engine's
interface (nsnet.engine.Engine), with Docker's error categories; it touches no kernel.
``served(engine)`` runs the real application under uvicorn on a unix socket in a temporary
directory, in a background thread, so tests go through HTTP, the middleware and the client.
Other test modules import these with ``from test_api_fakes import ...``.
"""

import contextlib
import dataclasses
import hashlib
import itertools
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from nsnet.errors import Conflict, Forbidden, InvalidArgument, NotFound
from nsnet.models import (
    OPT_BRIDGE_NAME,
    Container,
    ContainerCreate,
    Endpoint,
    IpamConfig,
    Network,
    NetworkCreate,
)
from nsnet.paths import Paths

CREATED = "2026-12-03T18:41:23.824991543Z"


def fake_id(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


class FakeEngine:
    """The engine's interface over dictionaries; records the threads that called it."""

    def __init__(self, paths: Paths | None = None, log_dir: str | None = None) -> None:
        self.paths = paths or Paths(state_dir=Path("/fake/lib"), run_dir=Path("/fake/run"))
        self.networks: dict[str, Network] = {}
        self.containers: dict[str, Container] = {}
        self.endpoints: list[Endpoint] = []
        self.threads: set[int] = set()
        self.calls: list[str] = []
        self.reaps = 0
        self.opened = False
        self.closed = False
        self.counter = itertools.count(1)
        # Real files for the containers' output, as the engine keeps it (one file each);
        # a process that is killed rather than closed names a directory its test removes.
        self._log_dir = tempfile.TemporaryDirectory(prefix="nsnet-fake-logs-", dir=log_dir)

    def _called(self, name: str) -> None:
        self.threads.add(threading.get_ident())
        self.calls.append(name)

    def open(self) -> None:
        self._called("open")
        self.opened = True
        for name, driver in (("none", "null"), ("host", "host"), ("bridge", "bridge")):
            network = Network(id=fake_id(name), name=name, driver=driver, created=CREATED)
            if name == "bridge":
                network.ipam = [
                    IpamConfig(IPv4Network("172.17.0.0/16"), IPv4Address("172.17.0.1"))
                ]
                network.options = {OPT_BRIDGE_NAME: "nsnet0"}
            self.networks[network.id] = network

    def close(self) -> None:
        self._called("close")
        self.closed = True

    def reap(self) -> None:
        self.threads.add(threading.get_ident())
        self.reaps += 1

    # Networks

    def create_network(self, request: NetworkCreate) -> Network:
        self._called("create_network")
        if any(network.name == request.name for network in self.networks.values()):
            raise Conflict(f"network with name {request.name} already exists")
        if request.enable_ipv6:
            raise InvalidArgument(
                f"cannot create network '{request.name}': IPv6 is not supported yet"
            )
        network = Network(
            id=fake_id(f"network {request.name} {next(self.counter)}"),
            name=request.name,
            driver=request.driver,
            created=CREATED,
            internal=request.internal,
            attachable=request.attachable,
            ipam=list(request.ipam),
            ipam_options=dict(request.ipam_options),
            options=dict(request.options),
            labels=dict(request.labels),
        )
        self.networks[network.id] = network
        return network

    def list_networks(self) -> list[Network]:
        self._called("list_networks")
        return list(self.networks.values())

    def get_network(self, ref: str) -> Network:
        self._called("get_network")
        if ref in self.networks:
            return self.networks[ref]
        named = [network for network in self.networks.values() if network.name == ref]
        if len(named) == 1:
            return named[0]
        prefixed = [network for network in self.networks.values() if network.id.startswith(ref)]
        if len(prefixed) == 1:
            return prefixed[0]
        raise NotFound(f"network {ref} not found")

    def remove_network(self, ref: str) -> None:
        self._called("remove_network")
        network = self.get_network(ref)
        if network.builtin:
            raise Forbidden(f"{network.name} is a pre-defined network and cannot be removed")
        if self.network_endpoints(network.id):
            raise Forbidden(
                f"error while removing network: network {network.name} has active endpoints"
            )
        del self.networks[network.id]

    def prune_networks(self, prunable=None) -> list[str]:
        self._called("prune_networks")
        names = []
        for network in list(self.networks.values()):
            if prunable is not None and not prunable(network):
                continue
            if not network.builtin and not self.network_endpoints(network.id):
                del self.networks[network.id]
                names.append(network.name)
        return names

    def network_endpoints(self, network_id: str) -> list[tuple[Container, Endpoint]]:
        return [
            (self.containers[endpoint.container_id], endpoint)
            for endpoint in self.endpoints
            if endpoint.network_id == network_id
        ]

    def connect(
        self,
        network_ref: str,
        container_ref: str,
        ip_address: str | None = None,
        aliases: list[str] | None = None,
    ) -> Endpoint:
        self._called("connect")
        network = self.get_network(network_ref)
        container = self.get_container(container_ref)
        if any(
            endpoint.network_id == network.id and endpoint.container_id == container.id
            for endpoint in self.endpoints
        ):
            raise Forbidden(
                f"endpoint with name {container.name} already exists in network {network.name}"
            )
        count = sum(1 for endpoint in self.endpoints if endpoint.container_id == container.id)
        subnet = network.ipam[0].subnet if network.ipam else IPv4Network("10.0.0.0/24")
        address = (
            IPv4Address(ip_address)
            if ip_address
            else subnet.network_address + 2 + len(self.endpoints)
        )
        endpoint = Endpoint(
            id=fake_id(f"endpoint {network.id} {container.id}"),
            network_id=network.id,
            container_id=container.id,
            container_ifname=f"eth{count}",
            host_ifname="veth" + fake_id(container.id + network.id)[:7],
            mac_address="02:42:ac:11:00:%02x" % (len(self.endpoints) + 2),
            address=address,
            prefixlen=subnet.prefixlen,
            gateway=network.ipam[0].gateway if network.ipam else None,
            aliases=list(aliases or []),
            static_address=bool(ip_address),
        )
        self.endpoints.append(endpoint)
        return endpoint

    def disconnect(self, network_ref: str, container_ref: str, force: bool = False) -> None:
        self._called("disconnect")
        network = self.get_network(network_ref)
        container = self.get_container(container_ref)
        before = len(self.endpoints)
        self.endpoints = [
            endpoint
            for endpoint in self.endpoints
            if not (endpoint.network_id == network.id and endpoint.container_id == container.id)
        ]
        if len(self.endpoints) == before:
            raise NotFound(f"container {container.id} is not connected to network {network.name}")

    # Containers

    def create_container(self, request: ContainerCreate) -> Container:
        self._called("create_container")
        number = next(self.counter)
        name = request.name or f"fake_{number}"
        if any(container.name == name for container in self.containers.values()):
            raise Conflict(f'the container name "/{name}" is already in use')
        container_id = fake_id(f"container {name} {number}")
        container = Container(
            id=container_id,
            name=name,
            created=CREATED,
            hostname=request.hostname or container_id[:12],
            network_mode=request.network,
            command=list(request.command),
            sysctls=dict(request.sysctls),
            mac_address=request.mac_address,
            ip_address=request.ip_address,
            aliases=list(request.aliases),
            auto_remove=request.auto_remove,
            ports=[
                port if port.host_ip else dataclasses.replace(port, host_ip="0.0.0.0")
                for port in request.ports
            ],
            labels=dict(request.labels),
            netns_path=f"/fake/run/netns/{container_id[:12]}",
            tty=request.tty,
        )
        self.containers[container.id] = container
        if request.network not in ("none", "host") and not request.network.startswith(
            "container:"
        ):
            try:
                self.connect(request.network, container.id, request.ip_address, request.aliases)
            except NotFound:
                del self.containers[container.id]
                raise
        return container

    def list_containers(self, all: bool = False) -> list[Container]:
        self._called("list_containers")
        return [
            container
            for container in self.containers.values()
            if all or container.state == "running"
        ]

    def get_container(self, ref: str) -> Container:
        self._called("get_container")
        if ref in self.containers:
            return self.containers[ref]
        for container in self.containers.values():
            if container.name == ref:
                return container
        prefixed = [c for c in self.containers.values() if c.id.startswith(ref)]
        if len(prefixed) == 1:
            return prefixed[0]
        raise NotFound(f"No such container: {ref}")

    def container_endpoints(self, container_id: str) -> list[tuple[Network, Endpoint]]:
        return [
            (self.networks[endpoint.network_id], endpoint)
            for endpoint in self.endpoints
            if endpoint.container_id == container_id
        ]

    def _set(self, container: Container, **changes) -> Container:
        updated = replace(container, **changes)
        self.containers[container.id] = updated
        return updated

    def start_container(self, ref: str) -> Container:
        """Running at once, having written "output of NAME" (and whatever the test adds)."""
        self._called("start_container")
        container = self.get_container(ref)
        self.write_output(container.id, f"output of {container.name}\n".encode())
        return self._set(container, state="running", pid=4242, detached=True, started_at=CREATED)

    def write_output(self, ref: str, data: bytes) -> None:
        """Append to a container's output file, as its process would (for tests)."""
        with open(self._log_path(self.get_container(ref)), "ab") as output:
            output.write(data)

    def _log_path(self, container: Container) -> Path:
        return Path(self._log_dir.name) / f"{container.id}.log"

    def enter_command(self, ref: str, command: list[str]) -> list[str]:
        self._called("enter_command")
        container = self.get_container(ref)
        return ["env", f"NSNET_FAKE_CONTAINER={container.name}", *command]

    def attach_process(self, ref: str, pid: int) -> Container:
        self._called("attach_process")
        return self._set(self.get_container(ref), state="running", pid=pid, started_at=CREATED)

    def process_exited(self, ref: str, exit_code: int) -> Container:
        self._called("process_exited")
        return self._set(
            self.get_container(ref),
            state="exited",
            pid=0,
            exit_code=exit_code,
            finished_at=CREATED,
        )

    def stop_container(self, ref: str, timeout: float = 10) -> Container:
        self._called("stop_container")
        return self._set(self.get_container(ref), state="exited", pid=0, exit_code=137)

    def signal_container(self, ref: str, signum: int) -> Container:
        """The fake process ends on any signal, but ignores SIGTERM when labelled so."""
        self._called(f"signal_container {signum}")
        container = self.get_container(ref)
        if container.state != "running":
            return container
        if signum == signal.SIGTERM and container.labels.get("fake.ignores") == "SIGTERM":
            return container
        return self._set(container, state="exited", pid=0, exit_code=128 + signum)

    def info(self) -> dict:
        self._called("info")
        return {
            "StateDirectory": str(self.paths.state_dir),
            "RunDirectory": str(self.paths.run_dir),
            "Firewall": {
                "Tables": ["inet nsnet", "bridge nsnet"],
                "Rules": 12,
                "Elements": {"inet nsnet bridges": 1},
            },
            "Warnings": ["a fake warning"],
        }

    def remove_container(self, ref: str, force: bool = False) -> None:
        self._called("remove_container")
        container = self.get_container(ref)
        if container.state == "running" and not force:
            raise Conflict(
                f"You cannot remove a running container {container.id}. Stop the container"
                " before attempting removal or force remove"
            )
        self.endpoints = [e for e in self.endpoints if e.container_id != container.id]
        del self.containers[container.id]

    def log_file(self, ref: str) -> tuple[Container, Path]:
        self._called("log_file")
        container = self.get_container(ref)
        return container, self._log_path(container)


@contextlib.contextmanager
def served(engine: object, reap_interval: float = 0.05) -> Iterator[str]:
    """The application around ``engine`` on a unix socket; yields the socket's path."""
    import uvicorn

    from nsnet.api.app import create_app

    with tempfile.TemporaryDirectory(prefix="nsnet-api-test-") as directory:
        path = str(Path(directory) / "api.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(16)
        config = uvicorn.Config(
            create_app(engine, reap_interval=reap_interval),
            log_config=None,
            log_level="warning",
            lifespan="on",
            server_header=False,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the test server did not start")
                time.sleep(0.01)
            yield path
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            listener.close()


def test_the_fake_engine_finds_networks_in_dockers_order() -> None:
    engine = FakeEngine()
    engine.open()
    bridge = engine.get_network("bridge")

    assert engine.get_network(bridge.id) is bridge
    assert engine.get_network(bridge.id[:5]) is bridge
