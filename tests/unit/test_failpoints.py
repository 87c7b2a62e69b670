"""nsnet.failpoints: steps armed through NSNET_FAILPOINTS raise InjectedFailure."""

import pytest

from nsnet import failpoints
from nsnet.errors import InjectedFailure, NsnetError


def test_nothing_is_armed_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NSNET_FAILPOINTS", raising=False)

    assert failpoints.armed() == set()
    failpoints.hit("connect.veth")


def test_an_armed_step_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSNET_FAILPOINTS", "connect.veth")

    with pytest.raises(InjectedFailure, match="injected failure at step 'connect.veth'"):
        failpoints.hit("connect.veth")


def test_other_steps_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSNET_FAILPOINTS", "connect.veth")

    failpoints.hit("connect.address")
    failpoints.hit("connect")
    failpoints.hit("connect.veth.extra")


def test_a_list_with_spaces_and_empty_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSNET_FAILPOINTS", " create.bridge , ,run.sandbox,")

    assert failpoints.armed() == {"create.bridge", "run.sandbox"}
    with pytest.raises(InjectedFailure):
        failpoints.hit("create.bridge")
    with pytest.raises(InjectedFailure):
        failpoints.hit("run.sandbox")


def test_the_variable_is_read_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSNET_FAILPOINTS", "rm.veth")
    with pytest.raises(InjectedFailure):
        failpoints.hit("rm.veth")

    monkeypatch.setenv("NSNET_FAILPOINTS", "")
    failpoints.hit("rm.veth")


def test_an_injected_failure_is_an_nsnet_error() -> None:
    assert issubclass(InjectedFailure, NsnetError)
    assert InjectedFailure("x").status == 500
