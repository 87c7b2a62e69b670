"""A container's processes end with it, as in Docker, through nsnetd and the CLI.

Docker's containers have a pid namespace: when the first process ends, the kernel kills every
other. nsnet's share the host's process table, so the daemon ends them itself, finding them by
the container's mount namespace: the daemons a command forked (``busybox httpd`` puts itself
in the background), the children of a process that ignores SIGTERM, and ``exec`` commands.
"""

import json
import os
import signal
import subprocess
import time

from tests.support.daemon import Daemon, program_argv

GONE_DEADLINE = 5.0  # seconds: the daemon notices an exit within half a second


def processes_in_mount_namespace(daemon: Daemon, name: str) -> list[int]:
    details = json.loads(daemon.cli("inspect", name).stdout)[0]
    target = os.stat(mount_namespace_file(daemon, details["Id"]))
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            held = os.stat(f"/proc/{entry}/ns/mnt")
        except OSError:
            continue
        if (held.st_dev, held.st_ino) == (target.st_dev, target.st_ino):
            found.append(int(entry))
    return found


def mount_namespace_file(daemon: Daemon, container_id: str) -> str:
    return str(daemon.root / "run" / "mntns" / f"{container_id}.mnt")


def wait_until_none(daemon: Daemon, name: str) -> list[int]:
    deadline = time.monotonic() + GONE_DEADLINE
    while (left := processes_in_mount_namespace(daemon, name)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_what_a_command_leaves_running_ends_with_it(daemon: Daemon) -> None:
    """Regression: a forked daemon outlived its container (Exited (0)) and kept serving."""
    daemon.cli("run", "-d", "--name", "forker", "--", "sh", "-c", "sleep 600 & echo forked")

    assert wait_until_none(daemon, "forker") == []
    state = json.loads(daemon.cli("inspect", "forker").stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0, state
    daemon.cli("rm", "forker")


def test_stop_ends_every_process_of_the_container(daemon: Daemon) -> None:
    """Regression: the children of a shell that ignores SIGTERM outlived stop and rm -f."""
    daemon.cli("run", "-d", "--name", "stubborn", "--", "sh", "-c",
               "trap '' TERM; sleep 1000 & sleep 1001 & wait")  # fmt: skip
    exec_argv = daemon.nsenter_argv(*program_argv("nsnet", "nsnet.cli"), "exec", "stubborn",
                                    "--", "sleep", "1002")  # fmt: skip
    executed = subprocess.Popen(exec_argv, env=daemon.environment(), stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + GONE_DEADLINE
        while len(processes_in_mount_namespace(daemon, "stubborn")) < 4:
            assert time.monotonic() < deadline, "the exec never joined the container"
            time.sleep(0.05)

        daemon.cli("stop", "-t", "1", "stubborn")

        assert wait_until_none(daemon, "stubborn") == []
        assert executed.wait(timeout=GONE_DEADLINE) == 128 + signal.SIGKILL
    finally:
        if executed.poll() is None:
            executed.kill()
            executed.wait()
    daemon.cli("rm", "stubborn")


def test_rm_f_leaves_no_process_of_the_container(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "busy", "--", "sh", "-c", "sleep 1000 & sleep 1001")
    container_id = json.loads(daemon.cli("inspect", "busy").stdout)[0]["Id"]
    namespace_file = mount_namespace_file(daemon, container_id)
    target = os.stat(namespace_file)

    daemon.cli("rm", "-f", "busy")

    deadline = time.monotonic() + GONE_DEADLINE
    while time.monotonic() < deadline:
        left = []
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                held = os.stat(f"/proc/{entry}/ns/mnt")
            except OSError:
                continue
            if (held.st_dev, held.st_ino) == (target.st_dev, target.st_ino):
                left.append(int(entry))
        if not left:
            break
        time.sleep(0.1)
    assert left == [], f"processes {left} outlived rm -f"
