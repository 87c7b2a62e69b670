"""The throwaway world a run lives in: namespaces, a temporary directory, agents, processes.

Everything the suite makes is registered here the moment it exists, so that ``World.close``
removes it whatever happened: processes first (a process keeps its namespace alive), then
subjects' own cleanups (daemons, the engine), then agents, then namespaces, then the directory.
"""

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.support.netns import Namespace, NamespacePool, created_names
from tests.support.topology import HostWithOutside

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
NAME_PREFIX = "nsnt-b"  # namespaces are nsnt-b<role>-<8 hex>
AGENT_TIMEOUT = 600


class AgentFailed(RuntimeError):
    """The agent answered a request with an error (its message is the agent's)."""


class Agent:
    """A ``bench.agent`` process inside one network namespace (see bench/agent.py)."""

    def __init__(self, netns_path: str | os.PathLike, log_path: Path) -> None:
        self.netns_path = str(netns_path)
        self.log_path = log_path
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH")])
        )
        with open(log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                ["nsenter", f"--net={self.netns_path}", sys.executable, "-m", "bench.agent"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                cwd=REPO_ROOT,
                env=environment,
                start_new_session=True,
            )
        self.request("ping")

    def request(self, op: str, **fields) -> dict:
        """Send one request and wait for its answer; raise ``AgentFailed`` on an error."""
        if self.process.poll() is not None:
            raise AgentFailed(f"the agent in {self.netns_path} has exited ({self.log_path})")
        self.process.stdin.write((json.dumps({"op": op, **fields}) + "\n").encode())
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise AgentFailed(f"the agent in {self.netns_path} died; see {self.log_path}")
        answer = json.loads(line)
        if not answer.pop("ok"):
            log.debug("agent traceback:\n%s", answer.get("traceback", ""))
            raise AgentFailed(answer["error"])
        return answer

    def exec(
        self,
        argv: list[str],
        env: dict[str, str] | None = None,
        input: str | None = None,
        check: bool = True,
        clean_env: bool = False,
        timeout: float = 120,
    ) -> dict:
        """Run ``argv`` in the agent's namespace; the answer has returncode, stdout, seconds."""
        answer = self.request(
            "exec", argv=argv, env=env or {}, input=input, clean_env=clean_env, timeout=timeout
        )
        if check and answer["returncode"] != 0:
            raise AgentFailed(
                f"{' '.join(argv[:4])} exited with {answer['returncode']}: "
                f"{(answer['stderr'] or answer['stdout']).strip()[-2000:]}"
            )
        return answer

    def close(self) -> None:
        """End the agent (closing stdin ends its loop; a kill if it does not)."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class World:
    """Namespaces, a directory under /tmp and processes for one run, all removed on close."""

    def __init__(
        self, parent: Path | None = None, name: str = "nsnt-bench", settings: dict | None = None
    ) -> None:
        # Under /tmp by default: dockerd's containerd puts unix sockets below it (108 bytes).
        self.directory = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=parent or "/tmp"))
        self.keep_directory = False
        self.settings = dict(settings or {})  # run options that subjects read
        self.pool = NamespacePool(prefix=NAME_PREFIX)
        self._cleanups: list[tuple[str, Callable[[], object]]] = []
        self._processes: list[subprocess.Popen] = []
        self._agents: list[Agent] = []

    def __enter__(self) -> "World":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def subdirectory(self, name: str) -> Path:
        """A fresh directory inside the run's directory."""
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.directory))
        return path

    def host_with_outside(self) -> HostWithOutside:
        """A host namespace with an outside namespace (192.0.2.0/24) beside it."""
        return HostWithOutside(pool=self.pool)

    def namespace(self, role: str) -> Namespace:
        """A plain namespace with ``lo`` up."""
        return self.pool.create(role)

    def adopt_namespace(self, name: str) -> Namespace:
        """Register a namespace made elsewhere (by an agent) under /run/netns for removal."""
        namespace = Namespace(name, pool=self.pool)
        self.pool.namespaces.append(namespace)
        created_names.add(name)
        return namespace

    def agent(self, netns_path: str | os.PathLike, role: str) -> Agent:
        """Start an agent inside ``netns_path``; it is ended when the world closes."""
        agent = Agent(netns_path, self.directory / f"agent-{role}.log")
        self._agents.append(agent)
        return agent

    def popen(self, argv: list[str], log_name: str, **kwargs) -> subprocess.Popen:
        """Start a process with its output in a log file; it is killed when the world closes."""
        with open(self.directory / log_name, "ab") as log_file:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **kwargs,
            )
        self._processes.append(process)
        return process

    def on_close(self, description: str, cleanup: Callable[[], object]) -> None:
        """Run ``cleanup`` when the world closes (last registered, first run)."""
        self._cleanups.append((description, cleanup))

    def close(self) -> list[str]:
        """Remove everything; return a description of whatever could not be removed."""
        problems = []

        # Our own processes first, so nothing respawns or holds a namespace being removed.
        for process in self._processes:
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)

        # Then the subjects' cleanups (some speak to their agent), last registered first.
        for description, cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except BaseException as error:  # noqa: BLE001 - keep going, report everything
                problems.append(f"{description}: {error}")
        self._cleanups.clear()

        for agent in self._agents:
            try:
                agent.close()
            except OSError as error:
                problems.append(f"cannot end agent in {agent.netns_path}: {error}")

        try:
            self.pool.close()
        except AssertionError as error:
            problems.append(str(error))

        if not self.keep_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        return problems
