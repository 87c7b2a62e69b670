"""Network, UTS and mount namespaces kept alive by bind-mounted files, and entering them.

Python 3.11 has no ``os.setns``/``os.unshare``, so these call libc through ctypes. Namespaces
belong to a thread, not a process: ``unshare`` in a short-lived thread makes a namespace
without disturbing the rest of the daemon, and ``entered`` switches the calling thread only,
always switching back.

A mount namespace file can only be bind-mounted from a mount namespace older than the one it
names (the kernel refuses loops), so ``create_mount`` has the calling thread, still in the
host's mount namespace, bind-mount the file of the namespace a short-lived thread has just
unshared, while that thread is alive to hold it.
"""

import contextlib
import ctypes
import errno
import logging
import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from nsnet.errors import NsnetError, Unavailable

log = logging.getLogger(__name__)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # ioctl on a namespace file: its CLONE_NEW* type

MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 0x2

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
]


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def setns(fd: int, nstype: int) -> None:
    """Move the calling thread into the namespace open at ``fd`` (setns(2)); OSError on failure."""
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    """Give the calling thread new namespaces of the ``CLONE_NEW*`` kinds in ``flags``."""
    _check(_libc.unshare(flags), "unshare")


def mount(source: str, target: str, fstype: str | None, flags: int) -> None:
    """mount(2) ``source`` on ``target``; OSError on failure.

    ``fstype`` is None for a bind mount or a change of propagation.
    """
    _check(
        _libc.mount(
            source.encode(), target.encode(), fstype.encode() if fstype else None, flags, None
        ),
        f"mount {source} on {target}",
    )


def umount(target: str, flags: int = MNT_DETACH) -> None:
    """Unmount ``target``, lazily by default (MNT_DETACH); OSError (EINVAL: not a mount point)."""
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


def sethostname(name: str) -> None:
    """Set the host name of the calling thread's UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def ensure_shared_directory(directory: Path) -> bool:
    """Make ``directory`` a shared mount point, as ``ip netns`` does with /run/netns.

    A process that later copies the mount table (a container process with its own mount
    namespace) then receives our unmounts, so it cannot keep a removed sandbox alive. Returns
    whether the mount point was made now (rather than found).
    """
    directory.mkdir(parents=True, exist_ok=True)
    made = not _is_mount_point(directory)
    if made:
        mount(str(directory), str(directory), None, MS_BIND | MS_REC)
    mount("none", str(directory), None, MS_SHARED | MS_REC)
    return made


def release_directory(directory: Path) -> None:
    """Undo ``ensure_shared_directory`` for a directory that holds nothing (a failed start)."""
    if _is_mount_point(directory) and not any(directory.iterdir()):
        umount(str(directory))


def ensure_private_directory(directory: Path) -> bool:
    """Make ``directory`` a private mount point: mounts made in it propagate nowhere.

    For mount namespace files: a bind mount that propagated into the namespace it names, or
    into another container's, would keep that namespace alive through a reference cycle.
    Returns whether the mount point was made now (rather than found).
    """
    directory.mkdir(parents=True, exist_ok=True)
    made = not _is_mount_point(directory)
    if made:
        mount(str(directory), str(directory), None, MS_BIND | MS_REC)
    mount("none", str(directory), None, MS_PRIVATE | MS_REC)
    return made


def _is_mount_point(directory: Path) -> bool:
    target = str(directory.resolve())
    with open("/proc/self/mountinfo") as mountinfo:
        return any(line.split()[4] == target for line in mountinfo)


def create(netns_path: Path, uts_path: Path | None, hostname: str | None) -> None:
    """Make a new network namespace (and UTS namespace) kept alive by files at the paths."""
    failure: list[BaseException] = []

    def worker() -> None:
        # This thread alone moves into the new namespaces; it exits afterwards.
        made: list[Path] = []
        try:
            flags = CLONE_NEWNET | (CLONE_NEWUTS if uts_path else 0)
            unshare(flags)
            if uts_path and hostname:
                sethostname(hostname)
            for kind, path in (("net", netns_path), ("uts", uts_path)):
                if path is None:
                    continue
                path.touch(mode=0o444, exist_ok=False)
                made.append(path)
                mount(f"/proc/thread-self/ns/{kind}", str(path), None, MS_BIND)
        except BaseException as error:  # handed to the caller below
            failure.append(error)
            for path in made:
                remove(path)

    thread = threading.Thread(target=worker, name="nsnet-unshare")
    thread.start()
    thread.join()
    if failure:
        raise Unavailable(
            f"cannot create namespace '{netns_path.name}': {failure[0]}"
        ) from failure[0]


def create_mount(
    mnt_path: Path,
    netns_path: str | Path,
    unmount: list[Path],
    binds: list[tuple[Path, str]],
) -> list[str]:
    """Make a mount namespace kept alive by a file at ``mnt_path``; return warnings.

    Inside it: every mount a slave of the host's (unmounts made on the host still reach it),
    the directories in ``unmount`` and every other namespace file detached (so that it pins no
    other namespace and receives no later bind mount made there), a fresh sysfs mounted from
    the network namespace at ``netns_path`` (so /sys/class/net lists its interfaces) and each
    ``(source, target)`` of ``binds`` bind-mounted. A sysfs that cannot be mounted is only a
    warning: /sys then shows the host's interfaces, netlink is unaffected.
    """
    ready = threading.Event()
    release = threading.Event()
    failure: list[BaseException] = []
    warnings: list[str] = []
    thread_ids: list[int] = []

    def worker() -> None:
        # This thread alone moves into the new mount namespace; it exits once the file holds it.
        try:
            netns = os.open(netns_path, os.O_RDONLY)
            try:
                unshare(CLONE_NEWNS)
                # Slave before anything is unmounted: an unmount on a shared mount would
                # propagate back to the host.
                mount("none", "/", None, MS_REC | MS_SLAVE)
                setns(netns, CLONE_NEWNET)
            finally:
                os.close(netns)
            for directory in unmount:
                _detach(str(directory))
            for target in _namespace_mount_points():
                _detach(target)
            try:
                umount("/sys", MNT_DETACH)
                mount("sysfs", "/sys", "sysfs", 0)
            except OSError as error:
                warnings.append(f"cannot mount a sysfs of the sandbox: {error}")
            for source, target in binds:
                mount(str(source), target, None, MS_BIND)
            thread_ids.append(threading.get_native_id())
        except BaseException as error:  # handed to the caller below
            failure.append(error)
        finally:
            ready.set()
        release.wait()

    thread = threading.Thread(target=worker, name="nsnet-unshare-mount")
    thread.start()
    try:
        ready.wait()
        if not failure:
            try:
                mnt_path.touch(mode=0o444, exist_ok=False)
                try:
                    mount(f"/proc/self/task/{thread_ids[0]}/ns/mnt", str(mnt_path), None, MS_BIND)
                except BaseException:
                    remove(mnt_path)
                    raise
            except BaseException as error:
                failure.append(error)
    finally:
        release.set()
        thread.join()
    if failure:
        raise Unavailable(
            f"cannot create mount namespace '{mnt_path.name}': {failure[0]}"
        ) from failure[0]
    return warnings


def _detach(target: str) -> None:
    try:
        umount(target, MNT_DETACH)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOENT):  # not a mount point, or no such path
            raise


def _namespace_mount_points() -> list[str]:
    """The calling thread's nsfs mounts, deepest first."""
    points = []
    with open("/proc/thread-self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            if fields[fields.index("-") + 1] == "nsfs":
                points.append(_unescape(fields[4]))
    return sorted(points, key=lambda point: point.count("/"), reverse=True)


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as three-digit octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def remove(path: Path) -> None:
    """Unmount and unlink a namespace file; a missing file is success."""
    try:
        umount(str(path), MNT_DETACH)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def namespace_type(path: str | Path) -> int:
    """The CLONE_NEW* type of the namespace file at ``path``; 0 when it is none.

    Opened without blocking and checked for a regular file first: a FIFO or a device given as
    a namespace must not hold the caller (the daemon's engine thread) in open().
    """
    import fcntl

    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return 0
        return fcntl.ioctl(descriptor, NS_GET_NSTYPE)  # succeeds only on namespace files
    except OSError:
        return 0
    finally:
        os.close(descriptor)


def is_mounted_namespace(path: Path) -> bool:
    """True when ``path`` is a live namespace bind mount (an nsfs file)."""
    return namespace_type(path) > 0


def is_network_namespace(path: str | Path) -> bool:
    """True when ``path`` names a live network namespace (a bind mount or /proc/PID/ns/net)."""
    return namespace_type(path) == CLONE_NEWNET


def inode(path: str | Path) -> int:
    """The inode number of ``path``; two files name one namespace when theirs are equal."""
    return os.stat(path).st_ino


def processes_in(namespace_path: str | Path, kind: str) -> list[int]:
    """The processes (other than this one) whose ``kind`` namespace ("mnt", "net"...) is the
    one kept at ``namespace_path``."""
    target = os.stat(namespace_path)
    own = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            held = os.stat(f"/proc/{entry.name}/ns/{kind}")
        except OSError:
            continue  # gone meanwhile, or a kernel thread
        if (held.st_dev, held.st_ino) == (target.st_dev, target.st_ino):
            found.append(int(entry.name))
    return found


@contextlib.contextmanager
def entered(netns_path: str | Path) -> Iterator[None]:
    """Run the body with the calling thread inside the network namespace at ``netns_path``."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(netns_path, os.O_RDONLY)
    except OSError as error:
        os.close(home)
        raise Unavailable(f"cannot enter namespace '{netns_path}': {error.strerror}") from error
    try:
        setns(target, CLONE_NEWNET)
        try:
            yield
        finally:
            # Going home must not fail silently: a thread left in a sandbox would act there.
            try:
                setns(home, CLONE_NEWNET)
            except OSError as error:
                log.critical("cannot return to the daemon's namespace: %s", error)
                raise NsnetError("thread stuck in a sandbox namespace") from error
    finally:
        os.close(target)
        os.close(home)
