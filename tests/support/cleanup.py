"""Forced cleanup of a daemon's root directory: processes, mounts and namespace files.

Used after nsnetd or dockerd has stopped (or crashed), so that a failing test leaves nothing
behind: every process inside one of the test's network namespaces, or inside a sandbox's mount
namespace, is killed, every mount under the root is lazily unmounted, and the files that were
namespace bind mounts are deleted.
"""

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.netns import kill_and_wait, namespace_inode, pids_in_namespaces, run

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
_NAMESPACE_ROOT = re.compile(r"^(\w+):\[(\d+)\]$")


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo."""

    mount_id: int
    parent_id: int
    root: str
    mount_point: str
    fs_type: str
    source: str

    @property
    def namespace(self) -> tuple[str, int] | None:
        """For an nsfs mount, the namespace kind and inode, e.g. ``("net", 4026532301)``."""
        if self.fs_type != "nsfs":
            return None
        match = _NAMESPACE_ROOT.match(self.root)
        return (match.group(1), int(match.group(2))) if match else None


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as three-digit octal escapes.
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def mountinfo() -> list[Mount]:
    """The mounts of this process's mount namespace."""
    mounts = []
    with open("/proc/self/mountinfo") as lines:
        for line in lines:
            fields = line.split()
            separator = fields.index("-")
            mounts.append(
                Mount(
                    mount_id=int(fields[0]),
                    parent_id=int(fields[1]),
                    root=_unescape(fields[3]),
                    mount_point=_unescape(fields[4]),
                    fs_type=fields[separator + 1],
                    source=_unescape(fields[separator + 2]),
                )
            )
    return mounts


def mounts_under(path: str | os.PathLike) -> list[Mount]:
    """Mounts at or below ``path``, deepest first (the order to unmount them in)."""
    base = os.path.realpath(path)
    found = [
        mount
        for mount in mountinfo()
        if mount.mount_point == base or mount.mount_point.startswith(base + "/")
    ]
    return sorted(found, key=lambda mount: mount.mount_point.count("/"), reverse=True)


def namespaces_under(path: str | os.PathLike, kind: str) -> set[int]:
    """Inodes of the ``kind`` namespaces (net, mnt...) bind-mounted at or below ``path``."""
    inodes = set()
    for mount in mounts_under(path):
        namespace = mount.namespace
        if namespace and namespace[0] == kind:
            inodes.add(namespace[1])
    return inodes


def network_namespaces_under(path: str | os.PathLike) -> set[int]:
    """Inodes of the network namespaces bind-mounted at or below ``path``."""
    return namespaces_under(path, "net")


def mount_namespaces_under(path: str | os.PathLike) -> set[int]:
    """Inodes of the mount namespaces bind-mounted at or below ``path`` (sandboxes')."""
    return namespaces_under(path, "mnt")


def pids_in_sandboxes(path: str | os.PathLike) -> set[int]:
    """Processes inside a network or mount namespace bind-mounted at or below ``path``."""
    return set(pids_in_namespaces(network_namespaces_under(path))) | set(
        pids_in_namespaces(mount_namespaces_under(path), "mnt")
    )


def pids_with_environment(name: str, value: str) -> list[int]:
    """Processes whose environment has ``name=value`` (this process excluded)."""
    wanted = f"{name}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if wanted in environ.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def clean_root(
    root: str | os.PathLike,
    namespace_paths: Sequence[str | os.PathLike] = (),
    environment: tuple[str, str] | None = None,
) -> list[str]:
    """Kill, unmount and delete what a stopped daemon left under ``root``.

    Kills every process inside the network namespaces at ``namespace_paths``, inside the
    network or mount namespaces bind-mounted under ``root``, and every process whose
    environment holds ``environment`` (name, value);
    then lazily unmounts every mount under ``root`` and deletes the files that were mount
    points. Returns a description of each thing that could not be cleaned.
    """
    problems = []
    root = Path(os.path.realpath(root))

    # Processes first: a process inside a namespace keeps it alive whatever is unmounted.
    inodes = set()
    for path in namespace_paths:
        inode = namespace_inode(path)
        if inode is not None:
            inodes.add(inode)
    pids = set(pids_in_namespaces(inodes)) | pids_in_sandboxes(root)
    if environment is not None:
        pids.update(pids_with_environment(*environment))
    survivors = kill_and_wait(sorted(pids))
    if survivors:
        problems.append(f"processes {survivors} of '{root}' survived SIGKILL")

    for mount in mounts_under(root):
        completed = run(["umount", "-l", mount.mount_point], check=False)
        if completed.returncode != 0 and "not mounted" not in completed.stderr:
            problems.append(f"cannot unmount '{mount.mount_point}': {completed.stderr.strip()}")
        else:
            _remove_mount_point(Path(mount.mount_point), root)

    left = mounts_under(root)
    if left:
        problems.append(f"mounts left under '{root}': {[m.mount_point for m in left]}")
    return problems


def _remove_mount_point(path: Path, root: Path) -> None:
    # A namespace bind mount leaves an empty regular file behind; directories stay for the
    # tmp-dir cleanup, and the root itself is never removed here.
    if path != root and path.is_file() and not path.is_symlink():
        try:
            path.unlink()
        except OSError:
            pass
