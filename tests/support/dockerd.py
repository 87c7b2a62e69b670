"""Docker 20.10's own dockerd inside a throwaway namespace, for side-by-side comparisons.

Debian's ``/usr/sbin/dockerd`` runs under ``nsenter --net`` with its own data root, pid file,
configuration file and log under the given root, and its exec root and socket in a short
directory of its own under /tmp (the containerd it starts puts unix sockets there, and a socket
path may not exceed 108 bytes). Its iptables rules, its ``docker0`` bridge and its containerd
all stay inside that namespace and those directories; ``close()`` stops it and removes what it
left.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.cleanup import clean_root
from tests.support.daemon import docker_cli_environment, namespace_path, tail
from tests.support.netns import Namespace, created_directories, run
from tests.support.topology import HostWithOutside
from tests.support.unixhttp import Response, request

DOCKERD = "/usr/sbin/dockerd"
START_TIMEOUT = 30
STOP_TIMEOUT = 20


def dockerd_available() -> bool:
    """Whether Debian's dockerd is installed."""
    return os.access(DOCKERD, os.X_OK)


class DockerdError(AssertionError):
    """dockerd did not start or stop as expected; the message carries its log."""


class Dockerd:
    """Debian's dockerd inside ``host_netns``, with every file it writes under ``root``."""

    def __init__(
        self,
        host_netns: "Namespace | HostWithOutside | str | os.PathLike",
        root: str | os.PathLike,
    ) -> None:
        self.netns_path = namespace_path(host_netns)
        self.topology = host_netns if isinstance(host_netns, HostWithOutside) else None
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_root = self.root / "data"
        self.run_dir = Path(tempfile.mkdtemp(prefix="nsnt-dockerd-", dir="/tmp"))
        created_directories.add(str(self.run_dir))
        self.exec_root = self.run_dir / "exec"
        self.pid_file = self.root / "dockerd.pid"
        self.config_file = self.root / "daemon.json"
        self.log_path = self.root / "dockerd.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Dockerd":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Dockerd(netns={str(self.netns_path)!r}, root={str(self.root)!r})"

    @property
    def socket(self) -> Path:
        """dockerd's API socket."""
        return self.run_dir / "docker.sock"

    def start(self, timeout: float = START_TIMEOUT) -> "Dockerd":
        """Start dockerd and wait until ``GET /_ping`` answers."""
        # An empty configuration file of our own, so that /etc/docker/daemon.json is not read.
        self.config_file.write_text(json.dumps({}))

        argv = [
            "nsenter", f"--net={self.netns_path}", DOCKERD,
            "--config-file", str(self.config_file),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "--pidfile", str(self.pid_file),
            "-H", f"unix://{self.socket}",
            # vfs needs no overlay mounts; no images are pulled or run, so its cost is nil.
            "--storage-driver", "vfs",
        ]  # fmt: skip
        environment = {
            name: value for name, value in os.environ.items() if not name.startswith("DOCKER_")
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._fail(f"dockerd exited with {self.process.returncode} while starting")
            if self.socket.exists():
                try:
                    if self.api("GET", "/_ping", timeout=2).status == 200:
                        return self
                except OSError:
                    pass
            time.sleep(0.1)
        self._fail(f"dockerd did not answer within {timeout} s")

    def _fail(self, problem: str) -> None:
        # A failed start is cleaned up here: a context manager's __exit__ never runs for it.
        log = tail(self.log_path)
        try:
            self.close()
        except DockerdError as error:
            problem += f"\n{error}"
        raise DockerdError(f"{problem}\n{log}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM dockerd (which stops its containerd), SIGKILL after ``timeout`` s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        """Stop dockerd, kill what is left in its namespace, unmount and delete its files."""
        self.stop()
        problems = clean_root(self.run_dir, namespace_paths=[self.netns_path])
        problems += clean_root(self.root)
        if problems:
            raise DockerdError("cleanup of dockerd failed:\n" + "\n".join(problems))
        # The data root can hold odd files; a failure to delete them leaks no kernel state.
        shutil.rmtree(self.data_root, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def api(self, method: str, path: str, body=None, timeout: float = 30) -> Response:
        """One raw HTTP request to dockerd's socket."""
        return request(self.socket, method, path, body=body, timeout=timeout)

    def docker(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess:
        """Run the docker CLI against this dockerd."""
        return run(
            ["docker", "-H", f"unix://{self.socket}", *args],
            check=check,
            input=input,
            env=docker_cli_environment(),
            timeout=timeout,
        )

    def exec_in_host(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``argv`` inside dockerd's namespace."""
        return run(["nsenter", f"--net={self.netns_path}", *argv], check=check)
