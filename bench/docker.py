"""Docker 20.10 (Debian's docker.io) as an anchor: dockerd inside the stage's host namespace.

dockerd runs under ``nsenter --net`` with its own data root, exec root, pid file and socket
(tests/support/dockerd.py), and here also its own cgroup parent, so that every cgroup its
containers make is ours to remove. Containers run a busybox root filesystem imported from
Debian's busybox-static with ``docker import``; the userland proxy stays on, as Docker ships.

The API is spoken as raw HTTP over the unix socket, one connection per request, like the
docker CLI does; the CLI is the machine's docker client (28, which negotiates API 1.41).
Docker sets a container's network up when it starts, not when it is created, so "container
create" here is create + start, and removal is ``rm -f``.
"""

import io
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from bench import processes
from bench.dockerapi import DockerApiSubject
from bench.subject import API, CLI, Unavailable
from tests.support.cleanup import mountinfo
from tests.support.dockerd import DOCKERD, Dockerd

BUSYBOX = Path("/bin/busybox")
IMAGE = "nsnt-busybox:bench"
START_TIMEOUT = 60


def missing_programs() -> list[str]:
    """Docker pieces this suite needs that are not installed."""
    missing = []
    if not os.access(DOCKERD, os.X_OK):
        missing.append(DOCKERD)
    for program in ("docker", "containerd", "runc"):
        if shutil.which(program) is None:
            missing.append(program)
    if not BUSYBOX.exists():
        missing.append(str(BUSYBOX))
    return missing


def busybox_rootfs_tar() -> bytes:
    """A root filesystem: /bin/busybox, a symlink per applet, and the usual directories."""
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for directory in ("bin", "dev", "etc", "proc", "sys", "tmp", "root"):
            entry = tarfile.TarInfo(directory)
            entry.type = tarfile.DIRTYPE
            entry.mode = 0o1777 if directory == "tmp" else 0o755
            archive.addfile(entry)
        archive.add(str(BUSYBOX), arcname="bin/busybox")
        for applet in applets:
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            archive.addfile(link)
    return buffer.getvalue()


class BenchDockerd(Dockerd):
    """The harness's Dockerd with a configuration of our own: a cgroup parent to remove."""

    def __init__(self, host_netns, root) -> None:
        super().__init__(host_netns, root)
        self.cgroup_parent = f"/nsnt-bench-{secrets.token_hex(4)}"

    def start(self, timeout: float = START_TIMEOUT) -> "BenchDockerd":
        """Start dockerd (as the harness does, with our configuration) and wait for /_ping."""
        argv = [
            "nsenter", f"--net={self.netns_path}", DOCKERD,
            "--config-file", str(self.config_file),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "--pidfile", str(self.pid_file),
            "-H", f"unix://{self.socket}",
            # vfs needs no overlay mounts; the image is one busybox binary.
            "--storage-driver", "vfs",
        ]  # fmt: skip
        # Our own file, so /etc/docker/daemon.json is not read.
        self.config_file.write_text(json.dumps({"cgroup-parent": self.cgroup_parent}))
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

    def close(self) -> None:
        """Stop dockerd and remove what it left, its cgroups included."""
        try:
            super().close()
        finally:
            remove_cgroups(self.cgroup_parent)


def remove_cgroups(parent: str) -> None:
    """Remove ``parent`` (and what is below it) from every mounted cgroup hierarchy."""
    roots = {mount.mount_point for mount in mountinfo() if mount.fs_type in ("cgroup", "cgroup2")}
    for root in roots:
        top = Path(root) / parent.lstrip("/")
        if not top.is_dir():
            continue
        # Deepest first: a cgroup directory can only be removed once it has no children.
        for directory in sorted(top.rglob("*"), key=lambda path: len(path.parts), reverse=True):
            if directory.is_dir():
                directory.rmdir()
        top.rmdir()


class Docker(DockerApiSubject):
    name = "docker"
    column = "Docker"
    interfaces = (API, CLI)
    container_interfaces = (API,)
    primary = API
    image = IMAGE
    starts_to_connect = True
    serves_dns = True

    def start(self) -> None:
        missing = missing_programs()
        if missing:
            raise Unavailable(f"Docker is not installed here: {', '.join(missing)} not found")
        self.dockerd = BenchDockerd(self.topology, self.world.subdirectory("docker"))
        self.world.on_close("stop dockerd", self.dockerd.close)
        self.dockerd.start()
        self.socket = self.dockerd.socket
        self.world.on_close("remove Docker's containers", self.remove_all_containers)
        self.agent = self.world.agent(self.topology.host.path, "docker-host")

        archive = self.world.directory / "busybox-rootfs.tar"
        archive.write_bytes(busybox_rootfs_tar())
        self.dockerd.docker("import", str(archive), IMAGE)

    def daemon_pids(self) -> list[int]:
        """dockerd first, then its containerd and docker-proxy children and its shims."""
        pid = self.dockerd.process.pid
        shims = processes.with_command_line(str(self.dockerd.exec_root))
        return [pid, *sorted({*processes.descendants(pid), *shims} - {pid})]

    def cli(self, *args: str) -> tuple[str, float]:
        answer = self.agent.exec(["docker", "-H", f"unix://{self.dockerd.socket}", *args])
        return answer["stdout"], answer["seconds"]
