"""The overlay agent: a thread that follows the cluster store and applies what it sees.

It reads the whole registry once (remembering the store's revision), then watches every key
under ``/nsnet/`` from the next revision on, so no change falls between the two. Endpoints of
other hosts go to the overlay driver (FDB and neighbour entries) and to the embedded DNS's
name index (with their host as origin); a change to the network definitions sets
``networks_changed`` for the engine's thread, which owns the local store. When the watch
breaks, or the store was unreachable for a while, or every ``RESYNC_INTERVAL`` seconds, the
agent reads the registry again and applies the difference.
"""

import logging
import threading

from nsnet.cluster.etcd import Etcd
from nsnet.cluster.records import KEYS, PREFIX, EndpointRecord, split_endpoint_key
from nsnet.cluster.store import ClusterStore
from nsnet.dns.index import NameIndex
from nsnet.drivers.overlay import OverlayDriver
from nsnet.errors import NsnetError

log = logging.getLogger(__name__)

RESYNC_INTERVAL = 60.0
RETRY_SECONDS = 1.0


class ClusterAgent:
    def __init__(
        self, store: ClusterStore, driver: OverlayDriver, index: NameIndex | None
    ) -> None:
        """Follow ``store``: other hosts' endpoints go to ``driver``, and to ``index`` unless None.

        The thread starts with ``start``.
        """
        self.store = store
        self.driver = driver
        self.index = index
        self.networks_changed = threading.Event()
        self._stopping = threading.Event()
        self._cancel_lock = threading.Lock()
        self._cancel = None
        self._thread: threading.Thread | None = None
        self._revision = 0
        self._synced = False  # whether _revision is that of a registry read since the last watch
        self._timer: threading.Timer | None = None

    @property
    def host(self) -> str:
        """This host's advertise address as text: records that carry it are its own."""
        return str(self.store.host_address)

    def start(self) -> None:
        """Read the registry now (so the first join sees every peer), then follow it.

        With the store unreachable, the thread reads it once it answers.
        """
        self._synced = False
        if self.store.reachable:
            try:
                self._revision = self.resync(self.store.etcd)
                self._synced = True
            except NsnetError as error:
                log.warning("cluster: cannot read the registry yet: %s", error)
        self.store.on_reconnect = self.restart_watch
        self._thread = threading.Thread(target=self._run, name="nsnet-cluster-agent", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Break the watch and wait for the thread to end (at most 5 s)."""
        self._stopping.set()
        self.restart_watch()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def restart_watch(self) -> None:
        """Break the current watch; the thread reads the registry again and watches anew."""
        with self._cancel_lock:
            cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel()

    # The thread

    def _run(self) -> None:
        connection = Etcd(self.store.config.store_host, self.store.config.store_port, 10)
        try:
            while not self._stopping.is_set():
                try:
                    if not self._synced:
                        self._revision = self.resync(connection)
                    self._synced = False  # whatever ends this watch, read the registry again
                    self._follow(connection)
                except NsnetError as error:
                    if self.store.reachable:
                        log.warning("cluster: watch interrupted: %s", error)
                except Exception:
                    log.exception("cluster: the watch failed")
                self._stopping.wait(RETRY_SECONDS if not self._stopping.is_set() else 0)
        finally:
            connection.close()

    def _follow(self, connection: Etcd) -> None:
        events, cancel = connection.watch(PREFIX, self._revision + 1)
        with self._cancel_lock:
            self._cancel = cancel
        timer = threading.Timer(RESYNC_INTERVAL, self.restart_watch)
        timer.daemon = True
        timer.start()
        try:
            if self._stopping.is_set():
                cancel()
            for event in events:
                self.apply(event["type"], event["key"], event["value"])
        finally:
            timer.cancel()
            cancel()

    # Applying changes

    def resync(self, connection: Etcd) -> int:
        """Make the view match the registry; return the revision it was read at."""
        revision, items = connection.range(KEYS.endpoints)
        seen = set()
        for item in items:
            key = split_endpoint_key(item.key)
            if key is None:
                continue
            seen.add(key)
            self.apply("PUT", item.key, item.value)
        for record in self.driver.remote_endpoints():
            if (record.network_id, record.endpoint_id) not in seen:
                self._forget(record.network_id, record.endpoint_id)
        self.networks_changed.set()
        log.debug("cluster: registry read at revision %d (%d endpoints)", revision, len(seen))
        return revision

    def apply(self, kind: str, key: str, value: bytes) -> None:
        """One change of a key under /nsnet/."""
        if key.startswith(KEYS.networks):
            self.networks_changed.set()
            return
        parts = split_endpoint_key(key)
        if parts is None:
            return
        network_id, endpoint_id = parts
        if kind == "DELETE":
            self._forget(network_id, endpoint_id)
            return
        try:
            record = EndpointRecord.from_json(value)
        except (ValueError, KeyError, TypeError) as error:
            log.warning("cluster: ignoring unreadable endpoint %s: %s", key, error)
            return
        if str(record.host_address) == self.host:
            return  # our own endpoints are in the local store
        self.driver.remote_put(record)
        if self.index is not None and record.stopped:
            self.index.remove(record.endpoint_id)  # as a stopped local container's
        elif self.index is not None:
            self.index.add(
                record.network_id,
                record.endpoint_id,
                [record.container_name, record.container_id[:12], *record.aliases],
                record.address,
                network_name=record.network_name,
                ptr_name=f"{record.container_name}.{record.network_name}",
                origin=str(record.host_address),
            )
        log.info(
            "cluster: network %s: %s (%s) on host %s",
            record.network_name,
            record.container_name,
            record.address,
            record.host_address,
        )

    def _forget(self, network_id: str, endpoint_id: str) -> None:
        record = self.driver.remote_delete(network_id, endpoint_id)
        if self.index is not None:
            self.index.remove(endpoint_id)
        if record is not None:
            log.info(
                "cluster: network %s: %s (%s) of host %s is gone",
                record.network_name,
                record.container_name,
                record.address,
                record.host_address,
            )
