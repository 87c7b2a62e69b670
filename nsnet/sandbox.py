"""Sandboxes: a container's network, UTS and mount namespaces, and running processes in them.

Each namespace is kept alive by a file bind-mounted in the host's mount namespace: ``<id>``
(network) and ``<id>.uts`` (UTS) under ``<run>/netns``, and ``<id>.mnt`` (mount) under
``<run>/mntns``. The netns directory is a shared mount, so that unmounting a file there also
reaches copies of it in other mount namespaces; the mntns directory is private, because a
mount namespace file that propagated into a mount namespace would keep it alive.

The mount namespace is the container's file system view: the host's, with a sysfs of the
sandbox's network namespace on /sys and the container's resolv.conf and hosts bind-mounted on
/etc/resolv.conf and /etc/hosts (rewritten in place, so the bind mounts stay valid). Every
process of the container joins it, so a mount made by one (``run -d``) is seen by the next
(``exec``), and by no one else. A ``container:<name>`` container shares the other's network
and UTS namespaces but, as in Docker, gets a mount namespace of its own (showing the other's
resolv.conf and hosts).

Processes enter through ``python -m nsnet.enter``, which joins the namespaces and execs the
command, so the command's pid is the container's process.
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
        self.mount_directory = paths.mntns_dir

    def prepare(self) -> list[Path]:
        """Make the namespace files' directories mount points; return those made now."""
        made = []
        if namespace.ensure_shared_directory(self.directory):
            made.append(self.directory)
        if namespace.ensure_private_directory(self.mount_directory):
            made.append(self.mount_directory)
        return made

    def netns_path(self, container_id: str) -> Path:
        """The file that keeps the container's network namespace alive."""
        return self.directory / container_id

    def uts_path(self, container_id: str) -> Path:
        """The file that keeps the container's UTS namespace alive."""
        return self.directory / f"{container_id}.uts"

    def mnt_path(self, container_id: str) -> Path:
        """The file that keeps the container's mount namespace alive."""
        return self.mount_directory / f"{container_id}.mnt"

    def create(self, container_id: str, hostname: str) -> tuple[str, str]:
        """Make the network and UTS namespaces; return their file paths."""
        netns_path = self.netns_path(container_id)
        uts_path = self.uts_path(container_id)
        namespace.create(netns_path, uts_path, hostname)
        log.debug("sandbox %s created", container_id[:12])
        return str(netns_path), str(uts_path)

    def create_mount(
        self, container_id: str, netns_path: str, resolv_conf: Path, hosts: Path
    ) -> str:
        """Make the container's mount namespace over the network namespace at ``netns_path``.

        ``resolv_conf`` and ``hosts`` must exist: they are bind-mounted over the host's files.
        Returns the mount namespace's file path.
        """
        mnt_path = self.mnt_path(container_id)
        # Detached inside: the namespace then pins no other sandbox and receives no later one.
        unmount = [self.directory, self.mount_directory, self.paths.overlay_dir]
        binds = [(resolv_conf, "/etc/resolv.conf"), (hosts, "/etc/hosts")]
        for warning in namespace.create_mount(mnt_path, netns_path, unmount, binds):
            log.warning("sandbox %s: %s", container_id[:12], warning)
        log.debug("sandbox %s: mount namespace created", container_id[:12])
        return str(mnt_path)

    def remove(self, container_id: str) -> None:
        """Unmount and unlink every namespace file of the container; missing ones are fine.

        Goes on past a failure and raises the first one after trying every file.
        """
        errors: list[OSError] = []
        for path in self._paths(container_id):
            try:
                namespace.remove(path)
            except OSError as error:
                errors.append(error)
        if errors:
            raise errors[0]
        log.debug("sandbox %s removed", container_id[:12])

    def remove_mount(self, container_id: str) -> None:
        """Unmount and unlink the mount namespace file only (a missing one is fine)."""
        namespace.remove(self.mnt_path(container_id))

    def _paths(self, container_id: str) -> list[Path]:
        return [
            self.netns_path(container_id),
            self.uts_path(container_id),
            self.mnt_path(container_id),
        ]

    def files(self) -> dict[str, list[Path]]:
        """Namespace files present on disk, grouped by container id."""
        grouped: dict[str, list[Path]] = {}
        for directory in (self.directory, self.mount_directory):
            if not directory.exists():
                continue
            for path in directory.iterdir():
                grouped.setdefault(path.name.split(".")[0], []).append(path)
        return grouped

    def enter_argv(
        self,
        command: list[str],
        netns_path: str = "",
        uts_path: str = "",
        mnt_path: str = "",
        status_fd: int | None = None,
    ) -> list[str]:
        """The argv that runs ``command`` inside the given namespaces (none: the host's).

        ``status_fd``: the write end of a pipe that gets why the command could not start, and
        closes when it has.
        """
        # -P: the process starts in the caller's directory, whose "nsnet" folder must not win.
        argv = [sys.executable, "-P", "-m", "nsnet.enter"]
        for flag, path in (("--net", netns_path), ("--uts", uts_path), ("--mnt", mnt_path)):
            if path:
                argv += [flag, path]
        if status_fd is not None:
            argv += ["--status-fd", str(status_fd)]
        return argv + ["--", *command]
