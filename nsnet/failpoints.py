"""Test-only failure injection at named steps of an operation.

The engine calls ``hit("connect.veth")`` and the like before each step. When the environment
variable ``NSNET_FAILPOINTS`` (a comma-separated list of step names) names that step, the call
raises ``InjectedFailure``, so tests can check that every step already done is rolled back.
Named as ``crash:STEP``, the process ends there at once instead, as a kill -9 would end it,
so tests can check what a restart makes of a half-done step.
"""

import os

from nsnet.errors import InjectedFailure

_ENV = "NSNET_FAILPOINTS"


def armed() -> set[str]:
    """The step names currently armed."""
    return {name.strip() for name in os.environ.get(_ENV, "").split(",") if name.strip()}


CRASH_STATUS = 137  # what a shell reports for a process killed by SIGKILL


def hit(step: str) -> None:
    """Raise ``InjectedFailure`` if ``step`` is armed; end the process if ``crash:step`` is."""
    steps = armed()
    if f"crash:{step}" in steps:
        os._exit(CRASH_STATUS)
    if step in steps:
        raise InjectedFailure(f"injected failure at step '{step}'")
