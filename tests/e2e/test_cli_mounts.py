"""A container's mount namespace through the real daemon and CLI, as Docker's behaves.

A mount made by the process of ``nsnet run -d`` is seen by a later ``nsnet exec`` in the same
container, and neither on the host nor in another container; ``nsnet rm`` leaves no mount or
namespace file behind. The mounts are made on directories under the test's tmp_path: container
processes share the host's file system.
"""

import os
import time
from pathlib import Path

from tests.support.cleanup import mountinfo, mounts_under
from tests.support.daemon import Daemon

READY_TIMEOUT = 10


def wait_for(path: Path) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


def container_id(daemon: Daemon, name: str) -> str:
    return daemon.api("GET", f"/containers/{name}/json").json()["Id"]


def test_a_mount_by_run_d_is_seen_by_exec_only_and_rm_leaves_nothing(
    daemon: Daemon, tmp_path: Path
) -> None:
    shared, ready = tmp_path / "shared", tmp_path / "ready"
    shared.mkdir()
    script = (
        f"mount -t tmpfs nsnet-test {shared} && echo inside > {shared}/made && touch {ready} "
        "&& exec sleep 600"
    )
    daemon.cli("run", "-d", "--name", "maker", "--", "sh", "-c", script)
    daemon.cli("run", "-d", "--name", "other", "--", "sleep", "600")
    assert wait_for(ready), daemon.cli("logs", "maker").stdout
    maker = container_id(daemon, "maker")

    seen = daemon.cli("exec", "maker", "--", "cat", f"{shared}/made")
    assert seen.stdout == "inside\n"
    pid = daemon.api("GET", "/containers/maker/json").json()["State"]["Pid"]
    joined = daemon.cli("exec", "maker", "--", "readlink", "/proc/self/ns/mnt").stdout.strip()
    assert joined == os.readlink(f"/proc/{pid}/ns/mnt")

    assert not (shared / "made").exists()
    assert not any(mount.mount_point == str(shared) for mount in mountinfo())
    elsewhere = daemon.cli("exec", "other", "--", "cat", f"{shared}/made", check=False)
    assert elsewhere.returncode != 0 and elsewhere.stdout == ""

    daemon.cli("rm", "-f", "maker", "other")

    assert not any(maker in mount.mount_point for mount in mounts_under(daemon.root))
    namespace_dirs = (daemon.root / "run" / "netns", daemon.root / "run" / "mntns")
    assert [path for directory in namespace_dirs for path in directory.iterdir()] == []
    assert not (daemon.root / "lib" / "containers" / maker).exists()


def test_container_mode_has_its_own_mounts_and_the_others_files(
    daemon: Daemon, tmp_path: Path
) -> None:
    private = tmp_path / "private"
    private.mkdir()
    daemon.cli("run", "-d", "--name", "owner", "--", "sleep", "600")
    daemon.cli("run", "-d", "--name", "guest", "--network", "container:owner", "--",
               "sleep", "600")  # fmt: skip

    daemon.cli("exec", "guest", "--", "mount", "-t", "tmpfs", "nsnet-test", str(private))

    def mounted(name: str) -> bool:
        table = daemon.cli("exec", name, "--", "cat", "/proc/self/mountinfo").stdout
        return any(line.split()[4] == str(private) for line in table.splitlines())

    assert mounted("guest") and not mounted("owner")
    for path in ("/etc/hosts", "/etc/resolv.conf", "/sys/class/net/eth0/address"):
        mine = daemon.cli("exec", "guest", "--", "cat", path).stdout
        assert mine and mine == daemon.cli("exec", "owner", "--", "cat", path).stdout, path

    daemon.cli("rm", "-f", "guest", "owner")
    assert list((daemon.root / "run" / "mntns").iterdir()) == []
    assert not any(mount.fs_type == "nsfs" for mount in mounts_under(daemon.root))
