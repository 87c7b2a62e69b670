"""Sandboxes: a container's network and UTS namespaces, and running processes inside them.

Each namespace is kept alive by a file bind-mounted under ``<run>/netns``: ``<id>`` for the
network namespace and ``<id>.uts`` for the UTS namespace. The directory is a shared mount so
that unmounting a file there also reaches copies of it in processes' mount namespaces.

Processes enter through ``python -m nsnet.enter``, which joins the namespaces, makes a private
mount namespace (with its own /sys and, when present, the container's resolv.conf and hosts)
and execs the command, so the command's pid is the container's process.
"""

import logging
import sys
from pathlib import Path

from nsnet.kernel import namespace
from nsnet.paths import Paths

log = logging.getLogger(__name__)


class Sandboxes:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.directory = paths.netns_dir

    def prepare(self) -> bool:
        """Make the namespace files' directory a shared mount; True when made now."""
        return namespace.ensure_shared_directory(self.directory)

    def netns_path(self, container_id: str) -> Path:
        return self.directory / container_id

    def uts_path(self, container_id: str) -> Path:
        return self.directory / f"{container_id}.uts"

    def create(self, container_id: str, hostname: str) -> tuple[str, str]:
        """Make the namespaces; return the network and UTS namespace file paths."""
        netns_path = self.netns_path(container_id)
        uts_path = self.uts_path(container_id)
        namespace.create(netns_path, uts_path, hostname)
        log.debug("sandbox %s created", container_id[:12])
        return str(netns_path), str(uts_path)

    def remove(self, container_id: str) -> None:
        """Unmount and unlink both namespace files; missing ones are fine."""
        for path in (self.netns_path(container_id), self.uts_path(container_id)):
            namespace.remove(path)
        log.debug("sandbox %s removed", container_id[:12])

    def files(self) -> dict[str, list[Path]]:
        """Namespace files present on disk, grouped by container id."""
        grouped: dict[str, list[Path]] = {}
        if not self.directory.exists():
            return grouped
        for path in self.directory.iterdir():
            grouped.setdefault(path.name.split(".")[0], []).append(path)
        return grouped

    def enter_argv(
        self,
        command: list[str],
        netns_path: str = "",
        uts_path: str = "",
        resolv_conf: Path | None = None,
        hosts: Path | None = None,
        status_fd: int | None = None,
    ) -> list[str]:
        """The argv that runs ``command`` inside the given namespaces.

        ``status_fd``: the write end of a pipe that gets why the command could not start, and
        closes when it has.
        """
        # -P: the process starts in the caller's directory, whose "nsnet" folder must not win.
        argv = [sys.executable, "-P", "-m", "nsnet.enter"]
        if netns_path:
            argv += ["--net", netns_path, "--unmount", str(self.directory)]
        if uts_path:
            argv += ["--uts", uts_path]
        if resolv_conf is not None and resolv_conf.exists():
            argv += ["--bind", f"{resolv_conf}:/etc/resolv.conf"]
        if hosts is not None and hosts.exists():
            argv += ["--bind", f"{hosts}:/etc/hosts"]
        if status_fd is not None:
            argv += ["--status-fd", str(status_fd)]
        return argv + ["--", *command]
