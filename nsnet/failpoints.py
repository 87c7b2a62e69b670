"""Test-only failure injection at named steps of an operation.

The engine calls ``hit("connect.veth")`` and the like before each step. When the environment
variable ``NSNET_FAILPOINTS`` (a comma-separated list of step names) names that step, the call
raises ``InjectedFailure``, so tests can check that every step already done is rolled back.
"""

import os

from nsnet.errors import InjectedFailure

_ENV = "NSNET_FAILPOINTS"


def armed() -> set[str]:
    """The step names currently armed."""
    return {name.strip() for name in os.environ.get(_ENV, "").split(",") if name.strip()}


def hit(step: str) -> None:
    """Raise ``InjectedFailure`` if ``step`` is armed."""
    if step in armed():
        raise InjectedFailure(f"injected failure at step '{step}'")
