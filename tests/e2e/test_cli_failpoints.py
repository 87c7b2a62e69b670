"""A failure injected at each named step, through the real daemon and CLI (issue 2, point 8).

The daemon is restarted with ``NSNET_FAILPOINTS=<step>``; the CLI operation that reaches the
step must fail saying so, and everything the daemon owns must be as before: links, addresses,
routes and the firewall of the host namespace, namespace files and mounts under the root, and
``network ls``, ``ps -a`` and the records behind inspect. The same operation then succeeds
once the failpoint is disarmed, so the failure left nothing in the way either.
"""

import re
import subprocess
from pathlib import Path

from test_cli_bad_input import snapshot

from tests.support.daemon import Daemon

PACKAGE = Path(__file__).resolve().parents[2] / "nsnet"
STEP_CALL = re.compile(r"failpoints\.hit\(\"([a-z_.]+)\"\)")
# Steps only an overlay network reaches need a cluster store; that tests inject them.
OVERLAY_STEPS = ("overlay.", "connect.register")

CREATE_NETWORK = ["network", "create", "--subnet", "10.86.0.0/24", "fresh"]
RUN = ["run", "-d", "--name", "fresh", "--network", "front", "-p", "8090:80", "--",
       "sleep", "600"]  # fmt: skip
CONNECT = ["network", "connect", "front", "loose"]

# step -> (the CLI operation that reaches it, how to undo that operation once it succeeds)
OPERATIONS = {
    "create_network.store": (CREATE_NETWORK, ["network", "rm", "fresh"]),
    "create_network.bridge": (CREATE_NETWORK, ["network", "rm", "fresh"]),
    "create_network.address": (CREATE_NETWORK, ["network", "rm", "fresh"]),
    "create_network.up": (CREATE_NETWORK, ["network", "rm", "fresh"]),
    "create_network.firewall": (CREATE_NETWORK, ["network", "rm", "fresh"]),
    "create_container.store": (RUN, ["rm", "-f", "fresh"]),
    "create_container.sandbox": (RUN, ["rm", "-f", "fresh"]),
    "create_container.mount": (RUN, ["rm", "-f", "fresh"]),
    "create_container.endpoint": (RUN, ["rm", "-f", "fresh"]),
    "create_container.ports": (RUN, ["rm", "-f", "fresh"]),
    "create_container.commit": (RUN, ["rm", "-f", "fresh"]),
    "start_container.spawn": (["start", "idle"], ["stop", "-t", "0", "idle"]),
    "connect.allocate": (CONNECT, ["network", "disconnect", "front", "loose"]),
    "connect.store": (CONNECT, ["network", "disconnect", "front", "loose"]),
    "connect.veth": (CONNECT, ["network", "disconnect", "front", "loose"]),
    "connect.veth.mark": (CONNECT, ["network", "disconnect", "front", "loose"]),
    "connect.address": (CONNECT, ["network", "disconnect", "front", "loose"]),
    "connect.route": (CONNECT, ["network", "disconnect", "front", "loose"]),
    "connect.ports": (CONNECT, ["network", "disconnect", "front", "loose"]),
    "disconnect.kernel": (
        ["network", "disconnect", "front", "member"],
        ["network", "connect", "front", "member"],
    ),
    "remove_container.endpoint": (["rm", "stopped"], None),
    "remove_container.store": (["rm", "stopped"], None),
    "remove_network.firewall": (["network", "rm", "empty"], None),
    "remove_network.bridge": (["network", "rm", "empty"], None),
}


def steps_in_the_code() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        found.update(STEP_CALL.findall(path.read_text()))
    return {step for step in found if not step.startswith(OVERLAY_STEPS)}


def test_every_step_in_the_code_is_injected_here() -> None:
    assert steps_in_the_code() == set(OPERATIONS)


def populate(daemon: Daemon) -> None:
    daemon.cli("network", "create", "--subnet", "10.85.0.0/24", "front")
    daemon.cli("network", "create", "empty")
    daemon.cli("run", "-d", "--name", "member", "--network", "front", "-p", "8091:80", "--",
               "sleep", "600")  # fmt: skip
    # Published on front but disconnected from it: connecting it again reaches every connect
    # step, the default route and the port bindings included.
    daemon.cli("run", "-d", "--name", "loose", "--network", "front", "-p", "8092:80", "--",
               "sleep", "600")  # fmt: skip
    daemon.cli("network", "disconnect", "front", "loose")
    daemon.cli("create", "--name", "idle", "--network", "front", "--", "sleep", "600")
    daemon.cli("create", "--name", "stopped", "--network", "front", "--", "true")


def changes(before: dict, after: dict) -> str:
    changed = [key for key in before if before[key] != after[key]]
    return "\n".join(
        f"  {key}:\n    before {before[key]!r}\n    after  {after[key]!r}" for key in changed
    )


def test_a_failure_at_each_step_changes_nothing(daemon: Daemon) -> None:
    # One daemon for every step (a restart arms the next one): restarts are the slow part.
    populate(daemon)
    problems = []

    for step in sorted(OPERATIONS):
        operation = OPERATIONS[step][0]
        daemon.restart(env={"NSNET_FAILPOINTS": step})
        before = snapshot(daemon)

        failed: subprocess.CompletedProcess = daemon.cli(*operation, check=False)

        if failed.returncode == 0:
            problems.append(f"{step}: `nsnet {' '.join(operation)}` succeeded")
            break  # the state has changed; later steps would compare against the wrong one
        if f"injected failure at step '{step}'" not in failed.stderr:
            problems.append(f"{step}: the error does not name the step: {failed.stderr!r}")
        found = changes(before, snapshot(daemon))
        if found:
            problems.append(f"{step}: the failure changed\n{found}")
            break

    assert not problems, "\n".join(problems)

    # Disarmed, every operation works: the failures left nothing in their way. Each distinct
    # operation once; those without an undo (removals) consume their target, so they go last.
    daemon.restart(env={})
    distinct = {tuple(operation): undo for operation, undo in OPERATIONS.values()}
    for operation, undo in sorted(distinct.items(), key=lambda item: item[1] is None):
        daemon.cli(*operation)
        if undo is not None:
            daemon.cli(*undo)
    daemon.cli("rm", "-f", *daemon.cli("ps", "-aq").stdout.split())
