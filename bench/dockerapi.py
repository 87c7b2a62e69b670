"""Operations through the Docker Engine API, shared by dockerd and nsnetd (which speaks it).

Requests are raw HTTP/1.1 over the daemon's unix socket, one connection per request (as the
docker CLI makes them), timed in this process around the request and its answer. The CLI side
of each subject execs its program through the host namespace's agent.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.subject import CLI, Container, Subject
from tests.support.unixhttp import request

SLEEP = ["sleep", "1000000"]
FILLER_WORKERS = 4


class ApiError(RuntimeError):
    """The daemon answered with an unexpected status."""


class DockerApiSubject(Subject):
    """A subject whose daemon serves the Docker Engine API on ``self.socket``."""

    socket: Path
    image: str | None = None  # sent as Image when set
    starts_to_connect = False  # Docker wires a container's network at start, not at create

    # Transport

    def api(self, method: str, path: str, body=None) -> tuple:
        """One API request; return (parsed JSON body or None, seconds)."""
        started = time.perf_counter()
        answer = request(self.socket, method, path, body=body, timeout=300)
        seconds = time.perf_counter() - started
        if answer.status >= 300 and answer.status != 304:
            raise ApiError(f"{method} {path} answered {answer.status}: {answer.text.strip()}")
        return (answer.json() if answer.body else None), seconds

    def cli(self, *args: str) -> tuple[str, float]:
        """Run the subject's CLI with ``args`` in the host namespace; (stdout, seconds)."""
        raise NotImplementedError

    # Networks

    def create_network(self, name: str, interface: str) -> tuple[str, float]:
        if interface == CLI:
            output, seconds = self.cli("network", "create", name)
            return output.strip(), seconds
        answer, seconds = self.api(
            "POST", "/networks/create", {"Name": name, "Driver": "bridge", "CheckDuplicate": True}
        )
        return answer["Id"], seconds

    def remove_network(self, handle: str, interface: str) -> float:
        if interface == CLI:
            return self.cli("network", "rm", handle)[1]
        return self.api("DELETE", f"/networks/{handle}")[1]

    # Endpoints

    def attach(self, network: str, container: Container, interface: str) -> float:
        if interface == CLI:
            return self.cli("network", "connect", network, container.handle)[1]
        body = {"Container": container.handle}
        return self.api("POST", f"/networks/{network}/connect", body)[1]

    def detach(self, network: str, container: Container, interface: str) -> float:
        if interface == CLI:
            return self.cli("network", "disconnect", network, container.handle)[1]
        body = {"Container": container.handle}
        return self.api("POST", f"/networks/{network}/disconnect", body)[1]

    # Containers

    def _create(
        self, name: str, network: str, ports: list[tuple[int, int]], run: bool
    ) -> tuple[str, float]:
        """Create (and start, when ``run`` or when the daemon needs it); (id, seconds)."""
        body: dict = {"Cmd": SLEEP, "HostConfig": {"NetworkMode": network}}
        if self.image:
            body["Image"] = self.image
        if ports:
            body["ExposedPorts"] = {f"{inside}/tcp": {} for _, inside in ports}
            bindings: dict[str, list] = {}
            for host, inside in ports:
                bindings.setdefault(f"{inside}/tcp", []).append({"HostPort": str(host)})
            body["HostConfig"]["PortBindings"] = bindings
        created, seconds = self.api("POST", f"/containers/create?name={name}", body)
        if run or self.starts_to_connect:
            seconds += self.api("POST", f"/containers/{created['Id']}/start")[1]
        return created["Id"], seconds

    def describe(self, container_id: str, name: str) -> Container:
        """Where the container's namespace is and its addresses, from its inspect JSON."""
        details, _ = self.api("GET", f"/containers/{container_id}/json")
        settings = details.get("NetworkSettings") or {}
        pid = (details.get("State") or {}).get("Pid") or 0
        return Container(
            handle=container_id,
            name=name,
            netns_path=settings.get("SandboxKey") or (f"/proc/{pid}/ns/net" if pid else ""),
            addresses={
                network: endpoint.get("IPAddress", "")
                for network, endpoint in (settings.get("Networks") or {}).items()
            },
            extra={"pid": pid},
        )

    def create_target(self, name: str) -> Container:
        container_id, _ = self._create(name, "bridge", [], run=True)
        return self.describe(container_id, name)

    def create_container(
        self,
        name: str,
        network: str,
        ports: list[tuple[int, int]],
        interface: str,
        run: bool = False,
    ) -> tuple[Container, float]:
        container_id, seconds = self._create(name, network, ports, run)
        return self.describe(container_id, name), seconds

    def remove_container(self, container: Container, interface: str) -> float:
        return self.api("DELETE", f"/containers/{container.handle}?force=1&v=1")[1]

    def create_fillers(self, network: str, names: list[str]) -> None:
        with ThreadPoolExecutor(FILLER_WORKERS) as workers:
            list(workers.map(lambda name: self._create(name, network, [], False), names))

    def remove_all_containers(self) -> None:
        """Remove every container (before the daemon stops, so it stops nothing itself)."""
        listed, _ = self.api("GET", "/containers/json?all=1")
        with ThreadPoolExecutor(FILLER_WORKERS * 2) as workers:
            list(
                workers.map(
                    lambda entry: self.api("DELETE", f"/containers/{entry['Id']}?force=1&v=1"),
                    listed or [],
                )
            )
