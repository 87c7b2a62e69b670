"""Snapshots of the machine's own network namespace, to prove a test left nothing behind.

A ``Snapshot`` records link names, addresses, routes, ``ip netns list``, the mounts in
/proc/self/mountinfo (among them the network, UTS and mount namespace files of sandboxes, and
the directories that hold them) and the nftables tables of the namespace the tests run in (the
machine's own). ``assert_no_leaks(before)`` names every difference.
"""

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

from tests.support.cleanup import mountinfo
from tests.support.netns import NAME_PREFIX, run


def _lines(argv: list[str]) -> frozenset[str]:
    return frozenset(line.strip() for line in run(argv).stdout.splitlines() if line.strip())


def _addresses() -> frozenset[str]:
    # JSON so that lifetimes and other counters that change on their own are left out.
    entries = json.loads(run(["ip", "-j", "address", "show"]).stdout or "[]")
    return frozenset(
        f"{entry['ifname']} {address['family']} {address['local']}/{address['prefixlen']}"
        for entry in entries
        for address in entry.get("addr_info", [])
    )


def _links() -> frozenset[str]:
    entries = json.loads(run(["ip", "-j", "link", "show"]).stdout or "[]")
    return frozenset(entry["ifname"] for entry in entries)


def _mounts() -> frozenset[str]:
    # Every mount, not only namespace files: a daemon's bind mounts can leak as well.
    return frozenset(
        f"{mount.mount_point} ({mount.fs_type} {mount.root})" for mount in mountinfo()
    )


def _netns_names() -> frozenset[str]:
    # "name (id: N)" — the id is assigned lazily and so is left out.
    return frozenset(line.split()[0] for line in _lines(["ip", "netns", "list"]))


@dataclass(frozen=True)
class Snapshot:
    """What the machine's own namespace holds at one moment."""

    links: frozenset[str]
    addresses: frozenset[str]
    routes: frozenset[str]
    netns: frozenset[str]
    mounts: frozenset[str]
    nft_tables: frozenset[str]

    @classmethod
    def take(cls) -> "Snapshot":
        """Read the current state."""
        return cls(
            links=_links(),
            addresses=_addresses(),
            routes=_lines(["ip", "route", "show", "table", "all"])
            | _lines(["ip", "-6", "route", "show", "table", "all"]),
            netns=_netns_names(),
            mounts=_mounts(),
            nft_tables=_lines(["nft", "list", "tables"]),
        )


def differences(
    before: Snapshot, after: Snapshot, ignore: Callable[[str, str], bool] | None = None
) -> list[str]:
    """Each difference as "leaked <kind>: <item>" or "removed <kind>: <item>".

    ``ignore(kind, item)`` may exclude items that another test run on the same machine owns.
    """
    found = []
    for field in fields(Snapshot):
        old, new = getattr(before, field.name), getattr(after, field.name)
        for item in sorted(new - old):
            if not (ignore and ignore(field.name, item)):
                found.append(f"leaked {field.name}: {item}")
        for item in sorted(old - new):
            if not (ignore and ignore(field.name, item)):
                found.append(f"removed {field.name}: {item}")
    return found


LAB_PREFIXES = ("/run/nsnet-lab-", "/run/nsnet-cluster-")


def foreign_harness_items(
    own_names: set[str],
    own_directories: set[str] = frozenset(),
    own_temp_root: str | None = None,
) -> Callable[[str, str], bool]:
    """An ``ignore`` for what other test runs and experiments on the same machine do meanwhile.

    Those are ``nsnt-`` namespaces not in ``own_names``, and mounts in the temporary directory
    (/tmp) that are neither under ``own_temp_root`` (this run's pytest directory) nor under one
    of ``own_directories``. Everything else always counts: the machine's links, addresses,
    routes and nftables tables, namespaces with other names, and mounts anywhere else (where
    nsnet's default /run/nsnet and /var/lib/nsnet are).
    """
    temp_dir = tempfile.gettempdir().rstrip("/") + "/"
    own_roots = [root.rstrip("/") + "/" for root in [*own_directories, own_temp_root] if root]

    def ignore(kind: str, item: str) -> bool:
        if kind == "netns":
            return _is_foreign_name(item)
        if kind != "mounts":
            return False

        mount_point = item.rsplit(" (", 1)[0]
        if mount_point.startswith("/run/netns/"):
            return _is_foreign_name(mount_point.removeprefix("/run/netns/"))
        if mount_point.startswith(temp_dir):
            return not any((mount_point + "/").startswith(root) for root in own_roots)
        # Labs of the demo and examples (nsnet.lab, nsnet.cluster.lab) run beside the tests
        # on a developer's machine; they check their own cleanup.
        return mount_point.startswith(LAB_PREFIXES)

    def _is_foreign_name(name: str) -> bool:
        return name.startswith(NAME_PREFIX) and name not in own_names

    return ignore


def assert_no_leaks(
    before: Snapshot,
    ignore: Callable[[str, str], bool] | None = None,
    settle: float = 2.0,
) -> None:
    """Fail naming every difference from ``before``, after up to ``settle`` s for it to clear.

    The kernel frees a namespace's devices asynchronously, so a difference is read again until
    it disappears or the time is up.
    """
    deadline = time.monotonic() + settle
    while True:
        found = differences(before, Snapshot.take(), ignore)
        if not found or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if found:
        raise AssertionError(
            "the test left changes in the machine's namespace:\n" + "\n".join(found)
        )
