"""Forgetting a released address's conntrack flows off the caller's path.

Finding a container's flows means walking the kernel's conntrack table, which is shared by
every namespace on the machine (262,144 buckets here): about 10 ms per walk, two walks per
address (flows from it, and flows to it), which was most of a detach. The engine hands the
address to this janitor instead, whose thread does the walks. Until they are done the address
is *settling*: the engine hands out another free address meanwhile (one still settling would
lose its new holder's first flows to the flush), waits for the flush when nothing else is free
or the address was asked for by name, and waits for every flush before it closes. A flush cut
short by a crash is made up by reconcile, which forgets the flows of every address that no
endpoint holds.
"""

import collections
import logging
import queue
import threading
from collections.abc import Callable
from ipaddress import IPv4Address

from nsnet.errors import NsnetError

log = logging.getLogger(__name__)

# A flush takes tens of milliseconds; a wait this long means the janitor is stuck.
WAIT_SECONDS = 10.0


class ConntrackJanitor:
    """A thread that forgets the conntrack flows of addresses, in the order they were given."""

    def __init__(self, flush: Callable[[IPv4Address], int]) -> None:
        """``flush(address)`` deletes every entry from or to ``address``, in this namespace."""
        self._flush = flush
        self._queue: queue.Queue[IPv4Address | None] = queue.Queue()
        self._settling: collections.Counter[IPv4Address] = collections.Counter()
        self._changed = threading.Condition()
        self._thread = threading.Thread(
            target=self._run, name="nsnet-conntrack-janitor", daemon=True
        )
        self._thread.start()

    def forget(self, address: IPv4Address) -> None:
        """Delete the flows of ``address`` soon; it is settling until then."""
        with self._changed:
            self._settling[address] += 1
        self._queue.put(address)

    def settling(self) -> frozenset[IPv4Address]:
        """The addresses whose flows are not forgotten yet."""
        with self._changed:
            return frozenset(self._settling)

    def wait(self, address: IPv4Address | None = None, timeout: float = WAIT_SECONDS) -> bool:
        """Wait until ``address`` (None: every address) has settled; False on a timeout."""

        def settled() -> bool:
            return address not in self._settling if address else not self._settling

        with self._changed:
            done = self._changed.wait_for(settled, timeout)
        if not done:
            log.warning("conntrack flushes still pending after %.0f s", timeout)
        return done

    def close(self) -> None:
        """Finish every flush handed over so far, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            address = self._queue.get()
            if address is None:
                return
            try:
                deleted = self._flush(address)
                log.debug("conntrack: forgot %d flows of %s", deleted, address)
            except NsnetError as error:
                # The address is free again either way; reconcile retries at the next start.
                log.warning("cannot flush conntrack entries of %s: %s", address, error)
            except Exception:
                # A bug must not stop the thread: every later wait would time out.
                log.exception("conntrack flush of %s failed", address)
            finally:
                with self._changed:
                    self._settling[address] -= 1
                    if self._settling[address] <= 0:
                        del self._settling[address]
                    self._changed.notify_all()
