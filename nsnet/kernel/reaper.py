"""Deleting veth pairs off the caller's path.

Deleting a veth pair costs the kernel 15–20 ms of RCU grace periods, most of a detach. The
engine first makes the interface useless at once (down, renamed out of the way inside the
sandbox), then hands the host end to this reaper, whose thread deletes it. A deletion that
fails is logged; the next reconcile removes what is left, since the link keeps nsnet's alias.
"""

import logging
import queue
import threading

from nsnet.errors import NsnetError
from nsnet.kernel.netlink import Netlink

log = logging.getLogger(__name__)


class LinkReaper:
    """A thread that deletes links in one namespace, in the order they were handed over."""

    def __init__(self, netlink: Netlink) -> None:
        """Start the reaper's thread.

        From now on the thread owns ``netlink``, a handle in the links' namespace, and ``close``
        closes it.
        """
        self.netlink = netlink  # used by the reaper thread only
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="nsnet-link-reaper", daemon=True)
        self._thread.start()

    def delete(self, ifname: str) -> None:
        """Hand ``ifname`` over for deletion and return at once (a link gone by then is fine)."""
        self._queue.put(ifname)

    @property
    def pending(self) -> bool:
        """Whether links handed over are not deleted yet."""
        return self._queue.unfinished_tasks > 0

    def drain(self) -> None:
        """Wait until every link handed over so far is deleted."""
        self._queue.join()

    def close(self) -> None:
        """Delete every link handed over so far, then stop the thread and close its handle."""
        self._queue.put(None)
        self._thread.join()
        self.netlink.close()

    def _run(self) -> None:
        while True:
            ifname = self._queue.get()
            try:
                if ifname is None:
                    return
                self.netlink.delete_link(ifname)
                log.debug("deleted link %s", ifname)
            except NsnetError as error:
                log.warning("cannot delete link '%s' (reconcile will retry): %s", ifname, error)
            finally:
                self._queue.task_done()
