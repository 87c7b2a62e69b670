"""etcd v3 through etcd3gw (the JSON gateway), with nsnet's errors and whole responses.

etcd3gw's helpers drop the response header (and so the revision a watch must start from), so
reads and transactions post the gateway's requests themselves through the client etcd3gw
gives. Every failure — unreachable server, timeout, a refusal — becomes ``Unavailable`` naming
the store, with the cause kept. One ``Etcd`` per thread: the HTTP session is not shared.
"""

import base64
import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import etcd3gw
import requests
from etcd3gw.exceptions import ConnectionFailedError, ConnectionTimeoutError, Etcd3Exception

from nsnet.errors import Unavailable

log = logging.getLogger(__name__)
# One debug line per HTTP request (several a second) would drown the daemon's own debug log.
logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)

API_PATH = "/v3/"  # etcd 3.4's gateway (3.3 had /v3beta/)


def encode(text: str | bytes) -> str:
    """Text or bytes in base64, as the gateway's JSON carries keys and values."""
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def decode(text: str | None) -> bytes:
    """The bytes of the gateway's base64 (empty for a missing value)."""
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: str) -> str:
    """The end of the range of keys that start with ``prefix`` (its last byte plus one)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return raw.decode()


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    lease: int
    mod_revision: int


def _key_value(item: dict) -> KeyValue:
    return KeyValue(
        key=decode(item.get("key")).decode(),
        value=decode(item.get("value")),
        lease=int(item.get("lease", 0)),
        mod_revision=int(item.get("mod_revision", 0)),
    )


# Transaction parts, in the gateway's JSON


def absent(key: str) -> dict:
    """Compare: the key does not exist."""
    return {"key": encode(key), "result": "EQUAL", "target": "CREATE", "create_revision": 0}


def present(key: str) -> dict:
    """Compare: the key exists."""
    return {"key": encode(key), "result": "GREATER", "target": "CREATE", "create_revision": 0}


def prefix_empty(prefix: str) -> dict:
    """Compare: no key starts with ``prefix``.

    A comparison over a range holds when it holds for every key in it, and etcd compares an
    empty range as one absent key, whose creation revision is 0.
    """
    return {**absent(prefix), "range_end": encode(prefix_end(prefix))}


def prefix_unchanged_since(prefix: str, revision: int) -> dict:
    """Compare: no key under ``prefix`` was written after ``revision`` (none was added either)."""
    return {
        "key": encode(prefix),
        "range_end": encode(prefix_end(prefix)),
        "result": "LESS",
        "target": "MOD",
        "mod_revision": revision + 1,
    }


def value_is(key: str, value: str | bytes) -> dict:
    """Compare: the key holds exactly ``value``."""
    return {"key": encode(key), "result": "EQUAL", "target": "VALUE", "value": encode(value)}


def put(key: str, value: str | bytes, lease: int = 0) -> dict:
    """Transaction part: put ``value`` at ``key``, under ``lease`` when one is given."""
    request = {"key": encode(key), "value": encode(value)}
    if lease:
        request["lease"] = lease
    return {"request_put": request}


def delete(key: str, prefix: bool = False) -> dict:
    """Transaction part: delete ``key``, or with ``prefix`` every key that starts with it."""
    request = {"key": encode(key)}
    if prefix:
        request["range_end"] = encode(prefix_end(key))
    return {"request_delete_range": request}


def get(key: str) -> dict:
    """Transaction part: read ``key``."""
    return {"request_range": {"key": encode(key)}}


class Etcd:
    """One connection to the store (one thread's)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        """A client of the gateway at ``host:port``; ``timeout`` bounds each request, in seconds.

        Nothing is sent until the first request.
        """
        self.url = f"etcd://{host}:{port}"
        self.client = etcd3gw.Etcd3Client(host=host, port=port, api_path=API_PATH, timeout=timeout)

    def close(self) -> None:
        """Close the HTTP session."""
        self.client.session.close()

    def _post(self, path: str, body: dict, action: str) -> dict:
        try:
            return self.client.post(self.client.get_url(path), json=body)
        except (Etcd3Exception, requests.RequestException, ValueError) as error:
            raise Unavailable(f"cannot {action}: cluster store {self.url}: {_cause(error)}") from (
                error
            )

    def status(self) -> dict:
        """The server's status; Unavailable when the store cannot be reached."""
        return self._post("/maintenance/status", {}, "reach the cluster store")

    def range(
        self, prefix: str, keys_only: bool = False, action: str | None = None
    ) -> tuple[int, list[KeyValue]]:
        """The store's revision and every key under ``prefix`` (``action`` names the read in
        an error)."""
        body = {"key": encode(prefix), "range_end": encode(prefix_end(prefix))}
        if keys_only:
            body["keys_only"] = True
        answer = self._post("/kv/range", body, action or f"read {prefix}")
        revision = int(answer.get("header", {}).get("revision", 0))
        return revision, [_key_value(item) for item in answer.get("kvs", [])]

    def get(self, key: str) -> KeyValue | None:
        """The key's value, lease and revision, or None when there is no such key."""
        answer = self._post("/kv/range", {"key": encode(key)}, f"read {key}")
        items = answer.get("kvs", [])
        return _key_value(items[0]) if items else None

    def transaction(
        self, compare: list[dict], success: list[dict], failure: list[dict] | None = None
    ) -> tuple[bool, list[dict]]:
        """Apply ``success`` if every comparison holds, else ``failure``; return which."""
        answer = self._post(
            "/kv/txn",
            {"compare": compare, "success": success, "failure": failure or []},
            "change the cluster store",
        )
        # The gateway leaves false out of its JSON, as protobuf does with default values.
        return bool(answer.get("succeeded", False)), answer.get("responses", [])

    def delete(self, key: str, prefix: bool = False) -> None:
        """Delete ``key``, or with ``prefix`` every key under it; a missing key is no error."""
        self._post("/kv/deleterange", delete(key, prefix)["request_delete_range"], "delete a key")

    # Leases

    def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; its id."""
        answer = self._post("/lease/grant", {"TTL": ttl, "ID": 0}, "take a lease")
        return int(answer["ID"])

    def keepalive(self, lease: int) -> int:
        """Renew ``lease``; its TTL in seconds, or -1 when it has expired."""
        answer = self._post("/lease/keepalive", {"ID": lease}, "renew the lease")
        return int(answer.get("result", {}).get("TTL", -1))

    def time_to_live(self, lease: int) -> int:
        """The seconds ``lease`` has left; -1 when it has expired or never existed."""
        answer = self._post("/kv/lease/timetolive", {"ID": lease}, "look up the lease")
        return int(answer.get("TTL", -1))

    def revoke(self, lease: int) -> None:
        """End ``lease`` now, deleting every key written under it."""
        self._post("/kv/lease/revoke", {"ID": lease}, "revoke the lease")

    # Watches

    def watch(self, prefix: str, start_revision: int) -> tuple[Iterator[dict], Callable[[], None]]:
        """Events under ``prefix`` from ``start_revision`` on, and the function that stops them.

        Each event is ``{"type": "PUT"|"DELETE", "key": str, "value": bytes}``. The iterator
        ends quietly once ``cancel`` is called (from any thread), and raises Unavailable when
        the stream ends any other way: the server went away, or cancelled the watch itself
        (its start revision was compacted). etcd3gw's own watch would block forever then.
        """
        body = {
            "create_request": {
                "key": encode(prefix),
                "range_end": encode(prefix_end(prefix)),
                "start_revision": start_revision,
            }
        }
        try:
            response = self.client.session.post(
                self.client.get_url("/watch"),
                json=body,
                stream=True,
                timeout=(self.client.timeout, None),  # an idle watch is no failure
            )
            response.raise_for_status()
        except requests.RequestException as error:
            raise Unavailable(
                f"cannot watch {prefix}: cluster store {self.url}: {_cause(error)}"
            ) from error
        cancelled = threading.Event()

        def cancel() -> None:
            cancelled.set()
            # Closing the response does not wake a thread blocked reading it; a shutdown does.
            with contextlib.suppress(AttributeError, OSError, ValueError):
                stream = socket.socket(fileno=os.dup(response.raw.fileno()))
                with stream:
                    stream.shutdown(socket.SHUT_RDWR)
            response.close()

        def events() -> Iterator[dict]:
            try:
                for line in response.iter_lines(chunk_size=None):  # each chunk as it comes
                    if cancelled.is_set():
                        return
                    if line.strip():
                        yield from _watch_events(json.loads(line), prefix, self.url)
            except (requests.RequestException, ValueError, OSError) as error:
                if not cancelled.is_set():
                    raise Unavailable(
                        f"the watch of {prefix} broke: cluster store {self.url}: {_cause(error)}"
                    ) from error
                return
            if not cancelled.is_set():
                raise Unavailable(f"the watch of {prefix} ended: cluster store {self.url} left it")

        return events(), cancel


def _watch_events(message: dict, prefix: str, url: str) -> Iterator[dict]:
    """The events in one message of a watch stream; Unavailable when it ends the watch."""
    result = message.get("result")
    if result is None:
        error = message.get("error", {})
        raise Unavailable(
            f"the watch of {prefix} failed: cluster store {url}: "
            f"{error.get('message', 'an answer with no result')}"
        )
    if result.get("canceled"):
        reason = result.get("cancel_reason") or (
            f"revision {result['compact_revision']} and older were compacted"
            if "compact_revision" in result
            else "no reason given"
        )
        raise Unavailable(f"the watch of {prefix} was cancelled by cluster store {url}: {reason}")
    for event in result.get("events", []):
        item = event.get("kv", {})
        yield {
            "type": event.get("type", "PUT"),
            "key": decode(item.get("key")).decode(),
            "value": decode(item.get("value")),
        }


def _cause(error: Exception) -> str:
    # etcd3gw's errors carry no text, and requests' carry a page of urllib3's.
    if isinstance(error, ConnectionTimeoutError | requests.Timeout):
        return "it does not answer (the request timed out)"
    if isinstance(error, ConnectionFailedError | requests.ConnectionError):
        return "it does not answer (the connection failed)"
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]
