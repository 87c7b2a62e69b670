"""The conntrack janitor's bookkeeping, with a stand-in for the kernel flush."""

import threading
from ipaddress import IPv4Address

from nsnet.errors import Unavailable
from nsnet.firewall.janitor import ConntrackJanitor

FIRST = IPv4Address("10.1.0.2")
SECOND = IPv4Address("10.1.0.3")


class GatedFlush:
    """Records the addresses flushed; each flush waits until the gate opens."""

    def __init__(self, fail_on: IPv4Address | None = None, crash_on: IPv4Address | None = None):
        self.gate = threading.Event()
        self.flushed: list[IPv4Address] = []
        self.fail_on = fail_on
        self.crash_on = crash_on

    def __call__(self, address: IPv4Address) -> int:
        self.gate.wait(10)
        self.flushed.append(address)
        if address == self.fail_on:
            raise Unavailable("cannot flush conntrack entries: the kernel said no")
        if address == self.crash_on:
            raise RuntimeError("a bug")
        return 1


def test_an_address_settles_once_its_flush_is_done() -> None:
    flush = GatedFlush()
    janitor = ConntrackJanitor(flush)

    janitor.forget(FIRST)
    janitor.forget(SECOND)
    assert janitor.settling() == {FIRST, SECOND}
    assert not janitor.wait(FIRST, timeout=0.1)

    flush.gate.set()
    assert janitor.wait()
    assert janitor.settling() == frozenset()
    assert flush.flushed == [FIRST, SECOND]
    janitor.close()


def test_an_address_given_twice_settles_after_its_second_flush() -> None:
    flush = GatedFlush()
    janitor = ConntrackJanitor(flush)

    janitor.forget(FIRST)
    janitor.forget(FIRST)
    flush.gate.set()

    assert janitor.wait(FIRST)
    assert flush.flushed == [FIRST, FIRST]
    janitor.close()


def test_close_finishes_every_flush_handed_over() -> None:
    flush = GatedFlush()
    janitor = ConntrackJanitor(flush)
    janitor.forget(FIRST)
    janitor.forget(SECOND)

    threading.Timer(0.2, flush.gate.set).start()
    janitor.close()

    assert flush.flushed == [FIRST, SECOND]
    assert janitor.settling() == frozenset()


def test_a_failed_or_crashed_flush_frees_the_address_and_the_thread_goes_on(caplog) -> None:
    flush = GatedFlush(fail_on=FIRST, crash_on=SECOND)
    flush.gate.set()
    janitor = ConntrackJanitor(flush)
    third = IPv4Address("10.1.0.4")

    for address in (FIRST, SECOND, third):
        janitor.forget(address)

    assert janitor.wait()
    assert flush.flushed == [FIRST, SECOND, third]
    assert "cannot flush conntrack entries of 10.1.0.2" in caplog.text
    assert "conntrack flush of 10.1.0.3 failed" in caplog.text
    janitor.close()
