"""Processes of a daemon: descendants, resident memory, and lookups by command line."""

import os


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return None


def parent_of(pid: int) -> int | None:
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` in the process tree (not ``pid`` itself)."""
    children: dict[int, list[int]] = {}
    for other in all_pids():
        parent = parent_of(other)
        if parent is not None:
            children.setdefault(parent, []).append(other)
    found = []
    waiting = list(children.get(pid, []))
    while waiting:
        child = waiting.pop()
        found.append(child)
        waiting.extend(children.get(child, []))
    return found


def with_command_line(fragment: str) -> list[int]:
    """Processes whose command line contains ``fragment``."""
    found = []
    for pid in all_pids():
        command_line = _read(f"/proc/{pid}/cmdline")
        if command_line and fragment in command_line.replace("\0", " "):
            found.append(pid)
    return found


def command_name(pid: int) -> str:
    return (_read(f"/proc/{pid}/comm") or "?").strip()


def rss_kib(pid: int) -> int | None:
    """Resident set size in KiB (VmRSS), or None when the process is gone."""
    status = _read(f"/proc/{pid}/status")
    if status is None:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def thread_count(pid: int) -> int:
    status = _read(f"/proc/{pid}/status") or ""
    for line in status.splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0
