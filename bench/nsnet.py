"""nsnet as the subject: nsnetd's API and CLI, and its engine called in-process.

``Nsnet`` runs nsnetd inside the stage's host namespace with its own NSNET_ROOT (through
tests/support/daemon.py, as the end-to-end tests do) and speaks Docker's API to it on
$NSNET_ROOT/run/nsnetd.sock; its CLI is this checkout's ``nsnet``, exec'd in the host
namespace. nsnet wires a container's network when it is created, so "container create" is
the create call alone; "container run" adds the start of its process.

``NsnetEngine`` opens an ``Engine`` inside an agent in its own host namespace and times each
call there: the engine's cost without HTTP, JSON or a process start. With ``--profile-engine``
the agent also keeps a cProfile of every engine call, written as <stage>-engine-*.prof in the
run directory (figures of such a run include the profiler's overhead).
"""

import importlib.util

from bench import processes
from bench.dockerapi import SLEEP, DockerApiSubject
from bench.subject import API, CLI, ENGINE, Container, Subject, Unavailable
from tests.support.cleanup import clean_root
from tests.support.daemon import Daemon, program_argv


def missing_pieces() -> list[str]:
    """nsnet's modules that a subject needs and that this checkout does not have yet."""
    return [
        module
        for module in ("nsnet.engine", "nsnet.daemon", "nsnet.cli")
        if importlib.util.find_spec(module) is None
    ]


class Nsnet(DockerApiSubject):
    name = "nsnet"
    column = "nsnet"
    interfaces = (API, CLI)
    container_interfaces = (API,)
    primary = API
    serves_dns = True

    def start(self) -> None:
        missing = missing_pieces()
        if missing:
            raise Unavailable(f"this checkout has no {', '.join(missing)} yet")
        self.root = self.world.subdirectory("nsnet")
        self.daemon = Daemon(self.topology, self.root)
        self.world.on_close("stop nsnetd", self.daemon.close)
        self.daemon.start()
        self.socket = self.daemon.socket
        self.agent = self.world.agent(self.topology.host.path, "nsnet-host")
        self.cli_argv = program_argv("nsnet", "nsnet.cli")

    def daemon_pids(self) -> list[int]:
        """nsnetd and its helper processes, without the containers' own processes."""
        pid = self.daemon.process.pid
        containers = set(self._container_pids())
        return [pid, *(child for child in processes.descendants(pid) if child not in containers)]

    def _container_pids(self) -> list[int]:
        listed, _ = self.api("GET", "/containers/json")
        pids = []
        for entry in listed or []:
            details, _ = self.api("GET", f"/containers/{entry['Id']}/json")
            pid = (details.get("State") or {}).get("Pid") or 0
            if pid:
                pids.append(pid)
                pids.extend(processes.descendants(pid))
        return pids

    def cli(self, *args: str) -> tuple[str, float]:
        answer = self.agent.exec(
            [*self.cli_argv, *args], env={"NSNET_ROOT": str(self.root)}, timeout=120
        )
        return answer["stdout"], answer["seconds"]


class NsnetEngine(Subject):
    name = "engine"
    column = "nsnet"
    interfaces = (ENGINE,)
    container_interfaces = (ENGINE,)
    primary = ENGINE
    # Its firewall is nsnetd's own code: traffic figures would repeat the nsnet subject's.
    measures_traffic = False

    def start(self) -> None:
        missing = [module for module in missing_pieces() if module == "nsnet.engine"]
        if missing:
            raise Unavailable("this checkout has no nsnet.engine yet")
        self.root = self.world.subdirectory("engine")
        self.world.on_close("remove the engine's leftovers", self._clean)
        self.agent = self.world.agent(self.topology.host.path, "engine-host")
        self.world.on_close("close the engine", self._close_engine)
        profile = None
        if self.world.settings.get("profile_engine"):
            # Beside the world's directory, so that it outlives the world.
            profile = str(self.world.directory.parent / f"{self.world.directory.name}.prof")
        self.agent.request("engine_open", root=str(self.root), profile=profile)

    def _close_engine(self) -> None:
        problems = self.agent.request("engine_close")["problems"]
        if problems:
            raise RuntimeError("; ".join(problems))

    def _clean(self) -> None:
        problems = clean_root(
            self.root,
            namespace_paths=[self.topology.host.path],
            environment=("NSNET_ROOT", str(self.root)),
        )
        if problems:
            raise RuntimeError("; ".join(problems))

    def call(self, call: str, **arguments) -> tuple[object, float]:
        answer = self.agent.request("engine", call=call, arguments=arguments)
        return answer["result"], answer["seconds"]

    # Networks

    def create_network(self, name: str, interface: str) -> tuple[str, float]:
        result, seconds = self.call("create_network", name=name, driver="bridge")
        return result["id"], seconds

    def remove_network(self, handle: str, interface: str) -> float:
        return self.call("remove_network", positional=[handle])[1]

    # Containers

    def _container(self, described: dict) -> Container:
        endpoints, _ = self.call("container_endpoints", positional=[described["id"]])
        container = Container(
            handle=described["id"], name=described["name"], netns_path=described["netns_path"]
        )
        for network, endpoint in endpoints:
            container.addresses[network["name"]] = endpoint["address"]
        return container

    def create_target(self, name: str) -> Container:
        described, _ = self.call("create_container", name=name, command=SLEEP, network="bridge")
        self.call("start_container", positional=[described["id"]])
        return self._container(described)

    def attach(self, network: str, container: Container, interface: str) -> float:
        return self.call("connect", positional=[network, container.handle])[1]

    def detach(self, network: str, container: Container, interface: str) -> float:
        return self.call("disconnect", positional=[network, container.handle])[1]

    def create_container(
        self,
        name: str,
        network: str,
        ports: list[tuple[int, int]],
        interface: str,
        run: bool = False,
    ) -> tuple[Container, float]:
        bindings = [
            {"container_port": inside, "host_port": host, "protocol": "tcp"}
            for host, inside in ports
        ]
        described, seconds = self.call(
            "create_container", name=name, command=SLEEP, network=network, ports=bindings
        )
        if run:
            seconds += self.call("start_container", positional=[described["id"]])[1]
        return self._container(described), seconds

    def remove_container(self, container: Container, interface: str) -> float:
        return self.call("remove_container", positional=[container.handle], force=True)[1]
