"""A daemon crash (``kill -9``) with ``run -d`` containers running, and the restart after it.

The containers' processes belong to no daemon session, so they survive the crash; the restarted
daemon adopts them (``ps`` shows them running), keeps every network, container and address,
the containers still reach each other and resolve each other's names, and when an adopted
process ends the daemon notices.
"""

import json
import os
import signal
import time

from tests.support.daemon import Daemon

NOTICE_TIMEOUT = 10


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def inspect(daemon: Daemon, name: str) -> dict:
    return json.loads(daemon.cli("inspect", name).stdout)[0]


def state_of(daemon: Daemon) -> dict:
    """Networks, containers and their addresses as the CLI shows them (times left out)."""
    networks = json.loads(daemon.cli("network", "inspect", "bridge", "front").stdout)
    containers = {}
    for line in daemon.cli("ps", "-a", "-q", "--no-trunc").stdout.split():
        details = inspect(daemon, line)
        containers[details["Name"].lstrip("/")] = {
            "Id": details["Id"],
            "Status": details["State"]["Status"],
            "Pid": details["State"]["Pid"],
            "Labels": details["Config"]["Labels"],
            "Networks": {
                name: (settings["IPAddress"], settings["MacAddress"], settings["EndpointID"])
                for name, settings in details["NetworkSettings"]["Networks"].items()
            },
        }
    return {
        "ls": daemon.cli("network", "ls", "--no-trunc").stdout,
        "networks": networks,
        "containers": containers,
    }


def wait_for_status(daemon: Daemon, name: str, status: str) -> dict:
    deadline = time.monotonic() + NOTICE_TIMEOUT
    while True:
        details = inspect(daemon, name)
        if details["State"]["Status"] == status or time.monotonic() > deadline:
            return details
        time.sleep(0.1)


def test_containers_survive_a_daemon_crash_and_are_adopted_again(daemon: Daemon) -> None:
    daemon.cli("network", "create", "--subnet", "10.70.0.0/24", "front")
    daemon.cli("run", "-d", "--name", "pinned", "--network", "front", "--ip", "10.70.0.9",
               "--", "sleep", "600")  # fmt: skip
    daemon.cli("run", "-d", "--name", "peer", "--network", "front", "--", "sleep", "600")
    daemon.cli("run", "-d", "--name", "plain", "--label", "team=web", "--", "sleep", "600")
    daemon.cli("create", "--name", "idle", "--network", "front", "--", "true")
    before = state_of(daemon)
    pids = {name: entry["Pid"] for name, entry in before["containers"].items() if entry["Pid"]}
    assert sorted(pids) == ["peer", "pinned", "plain"]
    # Only the user's labels: what nsnet records to adopt a process is its own business.
    assert before["containers"]["plain"]["Labels"] == {"team": "web"}
    assert before["containers"]["peer"]["Labels"] == {}

    daemon.kill9()

    assert all(alive(pid) for pid in pids.values()), pids
    daemon.start()

    after = state_of(daemon)
    assert after == before
    listed = daemon.cli("ps").stdout
    assert all(name in listed for name in pids), listed
    assert all(alive(pid) for pid in pids.values()), pids

    # The network still works, names included, and the pinned address stays taken.
    daemon.cli("exec", "peer", "--", "ping", "-c", "1", "-W", "2", "10.70.0.9")
    found = daemon.cli("exec", "peer", "--", "busybox", "nslookup", "pinned", "127.0.0.11")
    assert "10.70.0.9" in found.stdout, found.stdout
    daemon.cli("run", "-d", "--name", "late", "--network", "front", "--", "sleep", "600")
    late = inspect(daemon, "late")["NetworkSettings"]["Networks"]["front"]["IPAddress"]
    taken = [
        entry["Networks"]["front"][0]
        for entry in before["containers"].values()
        if "front" in entry["Networks"]
    ]
    assert "10.70.0.9" in taken and late not in taken, (late, taken)

    # An adopted process that ends is noticed; one that is stopped is stopped.
    os.kill(pids["pinned"], signal.SIGTERM)
    ended = wait_for_status(daemon, "pinned", "exited")
    assert ended["State"]["Status"] == "exited", ended["State"]
    assert not ended["State"]["Running"]
    daemon.cli("stop", "-t", "5", "peer")
    assert inspect(daemon, "peer")["State"]["Status"] == "exited"
    assert not alive(pids["peer"])

    daemon.cli("rm", "-f", "pinned", "peer", "plain", "idle", "late")
    assert daemon.cli("ps", "-aq").stdout == ""


def test_a_process_that_ends_while_the_daemon_is_down_is_exited_after_restart(
    daemon: Daemon,
) -> None:
    daemon.cli("run", "-d", "--name", "brief", "--", "sleep", "600")
    pid = inspect(daemon, "brief")["State"]["Pid"]

    daemon.kill9()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + NOTICE_TIMEOUT
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    daemon.start()

    details = wait_for_status(daemon, "brief", "exited")
    assert details["State"]["Status"] == "exited", details["State"]
    assert "Exited" in daemon.cli("ps", "-a").stdout
    daemon.cli("rm", "brief")
