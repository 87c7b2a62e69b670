"""Snapshots of the machine's own network namespace, to prove a test left nothing behind.

A ``Snapshot`` records link names, addresses, routes, ``ip netns list``, the nsfs mounts in
/proc/self/mountinfo and the nftables tables of the namespace the tests run in (the machine's
own). ``assert_no_leaks(before, after)`` names every difference.
"""

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

from tests.support.cleanup import mountinfo
from tests.support.netns import run

# A namespace made by a test harness: ours are recognised by name (netns.created_names).
_HARNESS_NAMESPACE = re.compile(r"^nsnt-[\w-]*[0-9a-f]{8}$")


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


def _nsfs_mounts() -> frozenset[str]:
    return frozenset(
        f"{mount.mount_point} ({mount.root})" for mount in mountinfo() if mount.fs_type == "nsfs"
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
    nsfs_mounts: frozenset[str]
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
            nsfs_mounts=_nsfs_mounts(),
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


def foreign_harness_items(
    own_names: set[str], own_temp_root: str | None = None
) -> Callable[[str, str], bool]:
    """An ``ignore`` for what other test runs on the same machine hold at the same time.

    Those are harness-named namespaces not in ``own_names``, and namespace mounts under another
    pytest run's temporary directory (one containing ``/pytest-of-`` that is not
    ``own_temp_root``).
    """

    def ignore(kind: str, item: str) -> bool:
        if kind == "netns":
            return _is_foreign_name(item)
        if kind != "nsfs_mounts":
            return False

        mount_point = item.rsplit(" (", 1)[0]
        if mount_point.startswith("/run/netns/"):
            return _is_foreign_name(mount_point.removeprefix("/run/netns/"))
        if "/pytest-of-" in mount_point:
            return own_temp_root is None or not mount_point.startswith(own_temp_root + "/")
        return False

    def _is_foreign_name(name: str) -> bool:
        return bool(_HARNESS_NAMESPACE.match(name)) and name not in own_names

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
