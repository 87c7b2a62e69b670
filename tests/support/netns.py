"""Uniquely named network namespaces for tests, always removed.

A ``NamespacePool`` creates namespaces with ``ip netns add`` (bind files under /run/netns) and, on
close, kills the processes it started and every process still inside one of its namespaces, then
deletes the namespaces. Commands run inside a namespace through ``nsenter --net=...``, which
changes only the network namespace (``ip netns exec`` would remount /sys).
"""

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

NETNS_DIR = Path("/run/netns")

NAME_PREFIX = "nsnt-"

# Every name this process ever created (never pruned), so that a leak check can tell its own
# namespaces from those of another test run on the same machine.
created_names: set[str] = set()

# Likewise the short directories under /tmp that this process made (see dockerd.py).
created_directories: set[str] = set()


class CommandFailed(subprocess.CalledProcessError):
    """A command exited non-zero; its message carries the command's output."""

    def __str__(self) -> str:
        text = f"command {self.cmd!r} exited with {self.returncode}"
        if self.stdout:
            text += f"\n--- stdout ---\n{self.stdout.rstrip()}"
        if self.stderr:
            text += f"\n--- stderr ---\n{self.stderr.rstrip()}"
        return text


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess:
    """Run ``argv`` with text output captured; raise ``CommandFailed`` on a non-zero exit."""
    completed = subprocess.run(
        list(argv),
        input=input,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and completed.returncode != 0:
        raise CommandFailed(
            completed.returncode, completed.args, completed.stdout, completed.stderr
        )
    return completed


def unique_name(prefix: str = NAME_PREFIX) -> str:
    """A name that no other test run will pick: ``prefix`` plus 8 random hex digits."""
    return f"{prefix}{secrets.token_hex(4)}"


def namespace_inode(path: str | os.PathLike) -> int | None:
    """The inode that identifies the network namespace at ``path``, or None if it is gone."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def process_namespace_inode(pid: int, kind: str = "net") -> int | None:
    """The inode of the ``kind`` namespace (net, mnt...) of process ``pid``, or None if gone."""
    return namespace_inode(f"/proc/{pid}/ns/{kind}")


def pids_in_namespaces(inodes: set[int], kind: str = "net") -> list[int]:
    """Every process whose ``kind`` namespace is one of ``inodes`` (this process excluded)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        if process_namespace_inode(int(entry), kind) in inodes:
            found.append(int(entry))
    return found


def kill_and_wait(pids: Sequence[int], timeout: float = 5) -> list[int]:
    """SIGKILL ``pids`` and wait until they are gone; return those still alive at the end."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        # Reap our own children; others' zombies are reaped by their parents or init.
        for pid in alive:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        alive = [pid for pid in alive if _is_running(pid)]
        if alive:
            time.sleep(0.02)
    return alive


def _is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The state follows the parenthesised command name; Z is a zombie (already dead).
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def prepare_netns_directory() -> None:
    """Make /run/netns the shared mount point that ``ip netns add`` makes on first use.

    iproute2 bind-mounts /run/netns onto itself the first time any namespace is added on a
    machine, and the mount stays for good. Doing it once before the first leak snapshot keeps it
    from being blamed on whichever test happens to add the first namespace on a fresh machine.
    """
    if os.path.ismount(NETNS_DIR):
        return
    name = unique_name()
    created_names.add(name)
    run(["ip", "netns", "add", name])
    run(["ip", "netns", "delete", name])


class Namespace:
    """A named network namespace made by ``ip netns add``."""

    def __init__(self, name: str, pool: "NamespacePool | None" = None) -> None:
        self.name = name
        self.path = NETNS_DIR / name
        self._pool = pool

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    @property
    def inode(self) -> int | None:
        """The namespace's inode (None once it is deleted)."""
        return namespace_inode(self.path)

    def nsenter_argv(self, *argv: str) -> list[str]:
        """``argv`` prefixed so that it runs inside this namespace."""
        return ["nsenter", f"--net={self.path}", *argv]

    def run(
        self,
        *argv: str,
        check: bool = True,
        input: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess:
        """Run ``argv`` inside the namespace and return its CompletedProcess (text)."""
        return run(self.nsenter_argv(*argv), check=check, input=input, env=env, timeout=timeout)

    def popen(self, *argv: str, **kwargs) -> subprocess.Popen:
        """Start ``argv`` inside the namespace; it is killed when the pool closes."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        process = subprocess.Popen(self.nsenter_argv(*argv), **kwargs)
        if self._pool is not None:
            self._pool.started.append(process)
        return process

    def delete(self) -> list[str]:
        """Kill every process inside, then delete the namespace; return what could not be done."""
        problems = []

        inode = self.inode
        if inode is not None:
            survivors = kill_and_wait(pids_in_namespaces({inode}))
            if survivors:
                problems.append(f"processes {survivors} in namespace '{self.name}' survived")

        if self.path.exists():
            completed = run(["ip", "netns", "delete", self.name], check=False)
            if completed.returncode != 0:
                problems.append(
                    f"cannot delete namespace '{self.name}': {completed.stderr.strip()}"
                )
        return problems


class NamespacePool:
    """Creates uniquely named namespaces and removes them all on ``close()``."""

    def __init__(self, prefix: str = NAME_PREFIX) -> None:
        self.prefix = prefix
        self.namespaces: list[Namespace] = []
        self.started: list[subprocess.Popen] = []

    def __enter__(self) -> "NamespacePool":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def create(self, role: str = "") -> Namespace:
        """Create a namespace named ``<prefix><role>-<hex>`` with ``lo`` up."""
        prefix = f"{self.prefix}{role}-" if role else self.prefix
        name = unique_name(prefix)
        run(["ip", "netns", "add", name])
        created_names.add(name)
        namespace = Namespace(name, pool=self)
        self.namespaces.append(namespace)

        namespace.run("ip", "link", "set", "lo", "up")
        return namespace

    def close(self) -> None:
        """Kill the processes started here, then delete every namespace, even after failures.

        Raises AssertionError naming whatever could not be cleaned up.
        """
        problems = []

        # Our own processes first, so that nothing respawns into a namespace being deleted.
        for process in self.started:
            if process.poll() is None:
                process.kill()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                problems.append(f"process {process.pid} ({process.args!r}) did not exit")
        self.started.clear()

        for namespace in reversed(self.namespaces):
            problems.extend(namespace.delete())
        self.namespaces.clear()

        if problems:
            raise AssertionError("cleanup failed:\n" + "\n".join(problems))


@contextmanager
def namespaces(*roles: str) -> Iterator[list[Namespace]]:
    """Create one namespace per role for the block and always remove them."""
    with NamespacePool() as pool:
        yield [pool.create(role) for role in roles]
