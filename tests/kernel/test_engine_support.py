"""Support for the engine's kernel tests: an Engine in a throwaway host namespace, and snapshots.

No tests here (the name only keeps the file beside the tests that use it). ``EngineThread``
drives the Engine directly, without the daemon: one worker thread enters the test's host
namespace first and then opens, uses and closes the Engine there, because the Engine's
pyroute2 handles belong to the thread and namespace that opened them. The test body runs in the
main thread, which stays in the machine's namespace and inspects the host with ``nsenter``.

``snapshot`` records everything an engine operation may change: the host's links (name, kind,
master, alias, IPv4 addresses) and IPv4 routes, every sandbox's links and routes, the namespace
files (network, UTS and mount) and nsfs mounts under the root, every mount inside each
sandbox's mount namespace, the processes in sandboxes, the container directories and files,
and the store's rows.
"""

import json
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nsnet.engine import Engine
from nsnet.kernel import namespace
from nsnet.paths import Paths
from tests.support.cleanup import clean_root, mounts_under, pids_in_sandboxes
from tests.support.netns import run
from tests.support.topology import HostWithOutside

REPO_ROOT = Path(__file__).resolve().parents[2]
CALL_TIMEOUT = 60
STORE_TABLES = ("networks", "containers", "endpoints", "addresses")


def _enter_for_good(netns_path: str) -> None:
    """Move the calling (worker) thread into ``netns_path`` for the rest of its life."""
    fd = os.open(netns_path, os.O_RDONLY)
    try:
        namespace.setns(fd, namespace.CLONE_NEWNET)
    finally:
        os.close(fd)


def _thread_netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


class EngineThread:
    """An Engine living in one worker thread inside the host namespace at ``host_path``.

    ``runner.create_network(...)`` and every other Engine method run in that thread;
    ``call(function)`` runs any function there. ``open()`` and ``close()`` can be repeated, as
    a daemon restart would.
    """

    def __init__(self, host_path: Path, root: Path) -> None:
        self.host_path = Path(host_path)
        self.root = Path(root)
        self.paths = Paths(state_dir=self.root / "lib", run_dir=self.root / "run")
        self.engine: Engine | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="nsnet-engine-test",
            initializer=_enter_for_good,
            initargs=(str(self.host_path),),
        )

    def call(self, function: Callable, *args, **kwargs):
        """Run ``function`` in the engine's thread and return its result (or raise its error)."""
        return self._executor.submit(function, *args, **kwargs).result(timeout=CALL_TIMEOUT)

    def open(self) -> Engine:
        """Open a new Engine on the same root, as a (re)started daemon does."""
        assert self.engine is None, "the engine is already open"

        def opening() -> Engine:
            # Never open an engine in the machine's own namespace.
            if _thread_netns_inode() != os.stat(self.host_path).st_ino:
                raise AssertionError("the engine thread is not in the test's host namespace")
            engine = Engine(self.paths)
            try:
                engine.open()
            except BaseException:
                engine.close()
                raise
            return engine

        self.engine = self.call(opening)
        return self.engine

    def close(self) -> None:
        """Close the Engine (processes it started keep running, as after a daemon stop)."""
        if self.engine is not None:
            engine, self.engine = self.engine, None
            self.call(engine.close)

    def reopen(self) -> Engine:
        self.close()
        return self.open()

    def __getattr__(self, name: str):
        engine = self.__dict__.get("engine")
        if engine is None:
            raise AttributeError(f"no open engine to ask for '{name}'")
        attribute = getattr(engine, name)
        if not callable(attribute):
            return attribute
        return lambda *args, **kwargs: self.call(attribute, *args, **kwargs)

    def drain(self) -> None:
        """Wait for kernel work the engine finishes in the background (veth deletion)."""
        engine = self.engine
        reaper = getattr(engine, "reaper", None)
        if reaper is not None:
            self.call(reaper.drain)

    def start(self, name: str):
        """Start a container's command and wait until its process is inside the sandbox."""
        container = self.start_container(name)
        sandbox = os.stat(container.netns_path).st_ino

        def inside() -> bool:
            try:
                return os.stat(f"/proc/{container.pid}/ns/net").st_ino == sandbox
            except OSError:
                return False

        if not wait_until(inside, timeout=10):
            raise AssertionError(f"the process of container '{name}' never entered its sandbox")
        return container

    def dispose(self) -> list[str]:
        """Close everything and remove what the engine left under the root."""
        problems = []
        try:
            self.close()
        except Exception as error:  # keep cleaning up
            problems.append(f"closing the engine failed: {error!r}")
        self._executor.shutdown(wait=True)
        problems.extend(clean_root(self.root))
        return problems

    # Inspection from the test's thread

    @property
    def netns_dir(self) -> Path:
        return self.paths.netns_dir

    @property
    def mntns_dir(self) -> Path:
        return self.paths.mntns_dir

    def namespace_files(self) -> list[Path]:
        """Every namespace file of every sandbox (network, UTS and mount)."""
        return sorted([*self.netns_dir.iterdir(), *self.mntns_dir.iterdir()])

    def host(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``argv`` in the host namespace."""
        return run(["nsenter", f"--net={self.host_path}", *argv], check=check)

    def host_json(self, *argv: str) -> list:
        return json.loads(self.host("ip", "-j", *argv).stdout or "[]")

    def exec(self, container: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess:
        """Run ``argv`` in a container, from the host namespace as the daemon would."""
        enter = self.enter_command(container, list(argv))
        return run(
            ["nsenter", f"--net={self.host_path}", *enter],
            check=check,
            env=checkout_environment(),
            timeout=30,
        )

    def exec_json(self, container: str, *argv: str) -> list:
        completed = self.exec(container, "ip", "-j", *argv, check=True)
        return json.loads(completed.stdout or "[]")

    def ping(self, container: str, address: str, wait: int = 2) -> bool:
        completed = self.exec(container, "ping", "-c", "1", "-W", str(wait), str(address))
        return completed.returncode == 0

    def host_link(self, ifname: str) -> dict | None:
        completed = self.host("ip", "-j", "-d", "link", "show", "dev", ifname, check=False)
        if completed.returncode != 0:
            return None
        return json.loads(completed.stdout)[0]

    def host_ifnames(self) -> set[str]:
        return {link["ifname"] for link in self.host_json("link", "show")}

    def store_rows(self) -> dict[str, list[tuple]]:
        """Every row of the engine's tables, read through a connection of our own."""
        connection = sqlite3.connect(f"file:{self.paths.database}?mode=ro", uri=True)
        try:
            query = "SELECT rowid, * FROM {} ORDER BY rowid"
            return {
                table: connection.execute(query.format(table)).fetchall() for table in STORE_TABLES
            }
        finally:
            connection.close()

    def delete_rows(self, statements: list[tuple[str, tuple]]) -> None:
        """Change the store behind the (closed) engine's back, as a lost record would."""
        assert self.engine is None, "close the engine before editing its store"
        connection = sqlite3.connect(self.paths.database)
        try:
            with connection:
                for sql, parameters in statements:
                    connection.execute(sql, parameters)
        finally:
            connection.close()


def checkout_environment() -> dict[str, str]:
    """Our environment with this checkout importable (``python -m nsnet.enter``)."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [environment.get("PYTHONPATH")])]
    )
    return environment


@pytest.fixture(name="engine")
def engine_fixture(
    host: HostWithOutside, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EngineThread]:
    """An open Engine in ``host``'s namespace with a fresh root; everything removed after."""
    monkeypatch.setenv("PYTHONPATH", checkout_environment()["PYTHONPATH"])
    monkeypatch.delenv("NSNET_FAILPOINTS", raising=False)
    runner = EngineThread(host.host.path, tmp_path / "nsnet")
    try:
        runner.open()
        yield runner
    finally:
        problems = runner.dispose()
        if problems:
            raise AssertionError("engine cleanup failed:\n" + "\n".join(problems))


# Snapshots


def _links(netns_path: Path | str, with_mac: bool) -> list[tuple]:
    links = _ip_json(netns_path, "-d", "link", "show")
    addresses = {
        entry["ifname"]: sorted(
            f"{item['local']}/{item['prefixlen']}" for item in entry.get("addr_info", [])
        )
        for entry in _ip_json(netns_path, "-4", "address", "show")
    }
    summary = []
    for link in links:
        summary.append(
            (
                link["ifname"],
                link.get("linkinfo", {}).get("info_kind", ""),
                link.get("master", ""),
                link.get("ifalias", ""),
                link.get("mtu"),
                "UP" in link.get("flags", []),
                link.get("address", "") if with_mac else "",
                tuple(addresses.get(link["ifname"], [])),
            )
        )
    return sorted(summary)


def _routes(netns_path: Path | str) -> list[tuple]:
    # Flags (linkdown) follow the carrier, which settles on its own; they are left out.
    keys = ("type", "dst", "gateway", "dev", "protocol", "scope", "prefsrc", "table")
    routes = _ip_json(netns_path, "-4", "route", "show", "table", "all")
    return sorted(tuple(str(route.get(key, "")) for key in keys) for route in routes)


def _ip_json(netns_path: Path | str, *argv: str) -> list:
    completed = run(["nsenter", f"--net={netns_path}", "ip", "-j", *argv])
    return json.loads(completed.stdout or "[]")


def _nftables(netns_path: Path | str) -> list[str]:
    """The namespace's nftables ruleset, each object as sorted JSON without handles."""
    completed = run(["nsenter", f"--net={netns_path}", "nft", "-j", "list", "ruleset"])
    objects = json.loads(completed.stdout or "{}").get("nftables", [])
    normalized = []
    for item in objects:
        for kind, body in item.items():
            if kind == "metainfo":
                continue
            body = {key: value for key, value in body.items() if key != "handle"}
            if isinstance(body.get("elem"), list):
                body["elem"] = sorted(
                    json.dumps(element, sort_keys=True) for element in body["elem"]
                )
            normalized.append(json.dumps({kind: body}, sort_keys=True))
    return sorted(normalized)


def snapshot(runner: EngineThread) -> dict:
    """Everything an engine operation may change, in a form that compares with ``==``."""
    runner.drain()
    netns_files = sorted(path.name for path in runner.netns_dir.iterdir())
    sandboxes = {
        name: {
            "links": _links(runner.netns_dir / name, with_mac=True),
            "routes": _routes(runner.netns_dir / name),
        }
        for name in netns_files
        if not name.endswith(".uts") and namespace.is_mounted_namespace(runner.netns_dir / name)
    }
    mntns_files = sorted(path.name for path in runner.mntns_dir.iterdir())
    containers_dir = runner.paths.containers_dir
    return {
        "host links": _links(runner.host_path, with_mac=False),
        "host routes": _routes(runner.host_path),
        "host nftables": _nftables(runner.host_path),
        "netns files": netns_files,
        "mntns files": mntns_files,
        "sandboxes": sandboxes,
        "sandbox mounts": {
            name: sandbox_mounts(runner.mntns_dir / name)
            for name in mntns_files
            if namespace.is_mounted_namespace(runner.mntns_dir / name)
        },
        "nsfs mounts": sorted(
            (mount.mount_point, mount.root)
            for mount in mounts_under(runner.root)
            if mount.fs_type == "nsfs"
        ),
        "container dirs": sorted(path.name for path in containers_dir.iterdir()),
        "container files": sorted(
            str(path.relative_to(containers_dir)) for path in containers_dir.glob("*/*")
        ),
        "sandbox processes": sorted(pids_in_sandboxes(runner.root)),
        "store": runner.store_rows(),
    }


def sandbox_mounts(mnt_path: Path | str) -> list[str]:
    """The mounts a sandbox's mount namespace adds to, or has over, the host's view.

    Each is "<mount point> <fs type> <root>"; the root's source and the host's own mounts
    (slaves of the machine's, which other runs change meanwhile) are left out.
    """
    inside = run(["nsenter", f"--mount={mnt_path}", "cat", "/proc/self/mountinfo"]).stdout
    return sorted(
        f"{fields[4]} {fields[fields.index('-') + 1]} {fields[3]}"
        for fields in (line.split() for line in inside.splitlines())
        if fields[4] in SANDBOX_MOUNT_POINTS
    )


# The mounts nsnet makes in a sandbox (/etc/resolv.conf may be a symlink on the host).
SANDBOX_MOUNT_POINTS = tuple(
    os.path.realpath(path) for path in ("/sys", "/etc/resolv.conf", "/etc/hosts")
)


def settled_snapshot(runner: EngineThread, expected: dict, timeout: float = 2.0) -> dict:
    """A snapshot, retaken for up to ``timeout`` s while it differs from ``expected``.

    The kernel frees a removed namespace's devices asynchronously; a difference that lasts
    longer than that is a real leftover.
    """
    deadline = time.monotonic() + timeout
    while True:
        taken = snapshot(runner)
        if taken == expected or time.monotonic() >= deadline:
            return taken
        time.sleep(0.05)


ETH_AT_IF = re.compile(r"^\d+: (?P<ifname>[\w.-]+)@if(?P<peer>\d+):", re.MULTILINE)


def peer_indexes(ip_d_link_output: str) -> dict[str, int]:
    """``{"eth0": N}`` from ``ip -d link`` text that shows ``eth0@ifN``."""
    return {match["ifname"]: int(match["peer"]) for match in ETH_AT_IF.finditer(ip_d_link_output)}


def wait_until(predicate: Callable[[], bool], timeout: float = 10, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
