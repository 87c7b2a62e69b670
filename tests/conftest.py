"""Fixtures shared by all tiers, and the markers that tell the tiers apart.

Tests under tests/kernel are marked ``kernel`` and those under tests/e2e ``e2e``; both need root
and are skipped with a reason without it. Each of them is checked for leaks: the machine's own
namespace is snapshotted before the test and compared after it.
"""

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The harness is imported as ``tests.support`` whichever directory pytest was started from.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support import netns as netns_module  # noqa: E402
from tests.support.daemon import Daemon  # noqa: E402
from tests.support.dockerd import Dockerd, dockerd_available  # noqa: E402
from tests.support.leaks import Snapshot, assert_no_leaks, foreign_harness_items  # noqa: E402
from tests.support.netns import NamespacePool  # noqa: E402
from tests.support.topology import HostWithOutside  # noqa: E402

TIERS_NEEDING_ROOT = ("kernel", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by directory, and skip the root-only tiers when not root."""
    tests_dir = Path(__file__).resolve().parent
    is_root = os.geteuid() == 0
    for item in items:
        try:
            relative = Path(str(item.path)).resolve().relative_to(tests_dir)
        except ValueError:
            continue
        tier = relative.parts[0] if len(relative.parts) > 1 else ""
        if tier in TIERS_NEEDING_ROOT:
            item.add_marker(getattr(pytest.mark, tier))
            if not is_root:
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"{tier} tests need root: they create network namespaces"
                    )
                )


def _needs_root(request: pytest.FixtureRequest) -> bool:
    return any(request.node.get_closest_marker(tier) for tier in TIERS_NEEDING_ROOT)


@pytest.fixture(scope="session", autouse=True)
def netns_directory(request: pytest.FixtureRequest) -> None:
    """Before any leak snapshot, give /run/netns the mount ``ip netns add`` leaves behind."""
    needs_root = any(
        item.get_closest_marker(tier)
        for item in request.session.items
        for tier in TIERS_NEEDING_ROOT
    )
    if needs_root and os.geteuid() == 0:
        netns_module.prepare_netns_directory()


@pytest.fixture(autouse=True)
def leak_check(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """For kernel and e2e tests: fail if the machine's own namespace changed during the test.

    Autouse fixtures are set up first, so this one is torn down after every fixture the test
    used, and sees the state once they have cleaned up.
    """
    if not _needs_root(request) or os.geteuid() != 0:
        yield
        return

    before = Snapshot.take()
    yield
    own_temp_root = str(tmp_path_factory.getbasetemp().resolve())
    assert_no_leaks(
        before,
        ignore=foreign_harness_items(
            netns_module.created_names, netns_module.created_directories, own_temp_root
        ),
    )


@pytest.fixture
def netns_pool() -> Iterator[NamespacePool]:
    """A pool for uniquely named namespaces (``netns_pool.create("role")``), all removed after."""
    with NamespacePool() as pool:
        yield pool


@pytest.fixture
def host() -> Iterator[HostWithOutside]:
    """A throwaway host namespace with uplink eth0 192.0.2.1/24 to an outside at 192.0.2.100."""
    with HostWithOutside() as topology:
        yield topology


@pytest.fixture
def daemon(host: HostWithOutside, tmp_path: Path) -> Iterator[Daemon]:
    """nsnetd running in ``host`` with a fresh NSNET_ROOT (``tmp_path / "nsnet"``)."""
    with Daemon(host, tmp_path / "nsnet") as running:
        yield running


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start more daemons: ``daemon_factory(host, env=None, name="nsnet")``, all closed after.

    ``host`` is a HostWithOutside or Namespace (a multi-host test makes its own); each daemon
    gets its own NSNET_ROOT, ``tmp_path / name``.
    """
    started: list[Daemon] = []

    def start(host_netns, env: dict[str, str] | None = None, name: str = "") -> Daemon:
        name = name or f"nsnet{len(started)}"
        daemon = Daemon(host_netns, tmp_path / name, env=env)
        started.append(daemon)
        return daemon.start()

    yield start

    problems = []
    for daemon in reversed(started):
        try:
            daemon.close()
        except AssertionError as error:
            problems.append(str(error))
    if problems:
        raise AssertionError("\n".join(problems))


@pytest.fixture
def dockerd(tmp_path: Path) -> Iterator[Dockerd]:
    """Docker 20.10's dockerd in its own host-with-outside topology (skipped without dockerd)."""
    if not dockerd_available():
        pytest.skip("Debian's dockerd (/usr/sbin/dockerd, package docker.io) is not installed")
    with HostWithOutside() as topology, Dockerd(topology, tmp_path / "dockerd") as running:
        yield running
