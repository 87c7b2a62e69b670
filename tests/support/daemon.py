"""nsnetd and the nsnet CLI run inside a throwaway host namespace, as a user would run them.

``Daemon(host_netns, root)`` starts ``nsnetd`` with ``nsenter --net=/run/netns/HOST`` and
``NSNET_ROOT=root``; ``cli()`` and ``docker()`` talk to it the way a person would. ``close()``
stops it and removes whatever it left: processes in its namespaces, mounts and namespace files
under the root.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.cleanup import clean_root
from tests.support.netns import Namespace, run
from tests.support.topology import HostWithOutside
from tests.support.unixhttp import Response, request

REPO_ROOT = Path(__file__).resolve().parents[2]

START_TIMEOUT = 10
# The upstream name server nsnetd is given unless a test says otherwise: an address in the
# outside namespace's subnet, so that containers never ask the machine's own resolvers. Nothing
# answers there unless a test runs a server (tests/support/dnsupstream.py) at that address.
TEST_DNS_SERVER = "192.0.2.53"
STOP_TIMEOUT = 10
LOG_TAIL_LINES = 60


def namespace_path(netns: "Namespace | HostWithOutside | str | os.PathLike") -> Path:
    """The bind file of a namespace given as a Namespace, a HostWithOutside, a name or a path."""
    if isinstance(netns, HostWithOutside):
        return netns.host.path
    if isinstance(netns, Namespace):
        return netns.path
    text = os.fspath(netns)
    return Path(text) if "/" in text else Path("/run/netns") / text


def program_argv(script: str, module: str) -> list[str]:
    """How to run one of nsnet's console scripts with the interpreter running the tests.

    The script beside the interpreter (a virtualenv's bin directory) when installed, else the
    module through the interpreter itself, so that the code under test is always this checkout's.
    """
    beside = Path(sys.executable).parent / script
    if beside.exists():
        return [str(beside)]
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a file, or a note that it does not exist."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(no {path}: {error.strerror})"


class DaemonError(AssertionError):
    """nsnetd did not start or stop as expected; the message carries its logs."""


class Daemon:
    """nsnetd inside ``host_netns`` with its own ``NSNET_ROOT``.

    ``env`` adds variables to the daemon's environment (``NSNET_FAILPOINTS`` for instance);
    ``dns`` are the upstream servers given as ``--dns`` (``TEST_DNS_SERVER`` unless set; the
    attribute may be changed before a restart); ``program`` replaces the daemon's command line
    (the harness's own tests use a stand-in, which gets no ``--dns``); ``args`` are more flags
    for nsnetd (``--cluster-store ...``). Call ``start()`` (or use as a context manager) and
    ``close()``.
    """

    def __init__(
        self,
        host_netns: "Namespace | HostWithOutside | str | os.PathLike",
        root: str | os.PathLike,
        env: dict[str, str] | None = None,
        program: list[str] | None = None,
        dns: "list[str] | tuple[str, ...]" = (TEST_DNS_SERVER,),
        args: "list[str] | tuple[str, ...]" = (),
    ) -> None:
        self.netns_path = namespace_path(host_netns)
        self.topology = host_netns if isinstance(host_netns, HostWithOutside) else None
        self.root = Path(root)
        self.extra_env = dict(env or {})
        self.program = list(program or program_argv("nsnetd", "nsnet.daemon"))
        self.custom_program = program is not None
        self.dns = list(dns)
        self.args = list(args)  # more nsnetd flags (--cluster-store ...), kept across restarts
        self.console_log = self.root.parent / f"{self.root.name}-nsnetd-console.log"
        self.process: subprocess.Popen | None = None
        self.root.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> "Daemon":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Daemon(netns={str(self.netns_path)!r}, root={str(self.root)!r}, pid={self.pid})"

    @property
    def socket(self) -> Path:
        """The daemon's API socket."""
        return self.root / "run" / "nsnetd.sock"

    @property
    def log_file(self) -> Path:
        """The log nsnetd writes itself (``Paths.daemon_log``)."""
        return self.root / "lib" / "nsnetd.log"

    @property
    def pid(self) -> int | None:
        """The daemon's process id while it runs, else None."""
        if self.process is None or self.process.poll() is not None:
            return None
        return self.process.pid

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment for nsnet's programs: ours, plus NSNET_ROOT, PATH with our bin dir."""
        environment = {
            name: value for name, value in os.environ.items() if not name.startswith("NSNET_")
        }
        environment["NSNET_ROOT"] = str(self.root)
        environment["PYTHONUNBUFFERED"] = "1"
        # So that the CLI, if it ever starts nsnetd itself, finds this checkout's daemon, and so
        # that `python -c "from nsnet..."` imports this checkout when nsnet is not installed.
        environment["PATH"] = f"{Path(sys.executable).parent}:{environment.get('PATH', '')}"
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH")])
        )
        environment.update(self.extra_env)
        environment.update(extra or {})
        return environment

    def nsenter_argv(self, *argv: str) -> list[str]:
        """``argv`` prefixed so that it runs inside the host namespace."""
        return ["nsenter", f"--net={self.netns_path}", *argv]

    def dns_flags(self) -> list[str]:
        """``--dns ADDR`` for each upstream server (none for a stand-in program)."""
        if self.custom_program:
            return []
        return [flag for server in self.dns for flag in ("--dns", server)]

    def start(self, timeout: float = START_TIMEOUT) -> "Daemon":
        """Start nsnetd and wait until its socket answers ``GET /_ping``."""
        if self.pid is not None:
            raise DaemonError(f"nsnetd is already running as pid {self.pid}")

        with open(self.console_log, "ab") as console:
            console.write(f"--- starting nsnetd at {time.strftime('%H:%M:%S')} ---\n".encode())
            console.flush()
            # nsenter execs the daemon (no fork for a network namespace), so the pid is nsnetd's.
            self.process = subprocess.Popen(
                self.nsenter_argv(*self.program, *self.dns_flags(), *self.args),
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        deadline = time.monotonic() + timeout
        last_problem = "the socket never appeared"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._fail(f"nsnetd exited with {self.process.returncode} while starting")
            if self.socket.exists():
                try:
                    answer = self.api("GET", "/_ping", timeout=2)
                    if answer.status == 200:
                        return self
                    last_problem = f"GET /_ping answered {answer.status}: {answer.text}"
                except OSError as error:
                    last_problem = f"GET /_ping failed: {error}"
            time.sleep(0.05)

        self._fail(f"nsnetd did not answer within {timeout} s: {last_problem}")

    def _fail(self, problem: str) -> None:
        # A failed start is cleaned up here: a context manager's __exit__ never runs for it.
        logs = self.logs()
        try:
            self.close()
        except DaemonError as error:
            problem += f"\n{error}"
        raise DaemonError(f"{problem}\n{logs}")

    def logs(self) -> str:
        """The tails of the daemon's console output and of its own log file."""
        return (
            f"--- {self.console_log} ---\n{tail(self.console_log)}\n"
            f"--- {self.log_file} ---\n{tail(self.log_file)}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM the daemon, SIGKILL it after ``timeout`` s; return its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill9(self) -> None:
        """Kill the daemon with SIGKILL (a crash): what it supervises is left running."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(
        self, env: dict[str, str] | None = None, timeout: float = START_TIMEOUT
    ) -> "Daemon":
        """Stop the daemon (if running) and start it again on the same root.

        ``env``, when given, replaces the extra variables (``{"NSNET_FAILPOINTS": "..."}`` to arm
        a failpoint, ``{}`` to disarm it).
        """
        self.stop()
        if env is not None:
            self.extra_env = dict(env)
        return self.start(timeout=timeout)

    def close(self) -> None:
        """Stop the daemon and remove everything it left; raise naming what could not be."""
        self.stop()
        problems = clean_root(
            self.root,
            namespace_paths=[self.netns_path],
            environment=("NSNET_ROOT", str(self.root)),
        )
        if problems:
            raise DaemonError("cleanup of nsnetd failed:\n" + "\n".join(problems))

    def api(self, method: str, path: str, body=None, timeout: float = 30) -> Response:
        """One raw HTTP request to the daemon's socket."""
        return request(self.socket, method, path, body=body, timeout=timeout)

    def cli(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess:
        """Run ``nsnet ARGS`` inside the host namespace with this daemon's NSNET_ROOT."""
        return run(
            self.nsenter_argv(*program_argv("nsnet", "nsnet.cli"), *args),
            check=check,
            input=input,
            env=self.environment(env),
            timeout=timeout,
        )

    def docker(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        """Run the real docker CLI against this daemon's socket (``env``: variables to add)."""
        return run(
            ["docker", "-H", f"unix://{self.socket}", *args],
            check=check,
            input=input,
            env={**docker_cli_environment(), **(env or {})},
            timeout=timeout,
        )

    def exec_in_host(
        self,
        *argv: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess:
        """Run ``argv`` inside the host namespace (``ip -d link``, ``nft list ruleset``...)."""
        return run(
            self.nsenter_argv(*argv),
            check=check,
            input=input,
            env=self.environment(),
            timeout=timeout,
        )


def docker_cli_environment() -> dict[str, str]:
    """Our environment without the DOCKER_* variables that would redirect the docker CLI."""
    return {name: value for name, value in os.environ.items() if not name.startswith("DOCKER_")}
