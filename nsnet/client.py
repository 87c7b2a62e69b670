"""A small client of nsnetd's API: HTTP/1.1 over a unix socket, on plain sockets.

The CLI's start-up time is compared with docker's, so this speaks the little HTTP it needs
itself (one request per connection, ``Connection: close``; answers with Content-Length, chunked
or ended by the server's close) instead of importing ``http.client``, whose imports (ssl, the
email parser) cost more than the rest of the CLI. An answer with a 4xx/5xx status becomes the
``NsnetError`` subclass of that status, carrying the daemon's message; a daemon that cannot be
reached is ``ConnectionFailed`` (an ``Unavailable``).
"""

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

from nsnet.errors import Conflict, Forbidden, InvalidArgument, NotFound, NsnetError, Unavailable

ERRORS_BY_STATUS: dict[int, type[NsnetError]] = {
    400: InvalidArgument,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    503: Unavailable,
}


class DaemonError(NsnetError):
    """An error answer whose status has no category of its own (500 and the like)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ConnectionFailed(Unavailable):
    """No daemon could be reached: the request was not sent (safe to send again).

    ``no_listener`` says that nothing listens at the socket (it is missing, or refused the
    connection: a daemon killed without cleaning up leaves its socket file behind).
    """

    def __init__(self, message: str, no_listener: bool = False) -> None:
        super().__init__(message)
        self.no_listener = no_listener


class ProtocolError(Unavailable):
    """The daemon's answer was not HTTP as expected."""


class Answer:
    """An HTTP answer: status, headers (lower-case names) and body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def read_head(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read an answer's status line and headers; also return the body bytes read with them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise ProtocolError("the daemon closed the connection without answering")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        version, status_text = lines[0].split(" ", 2)[:2]
        status = int(status_text)
    except ValueError as error:
        raise ProtocolError(f"the daemon answered '{lines[0]}', not HTTP") from error
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def iter_body(
    connection: socket.socket, method: str, status: int, headers: dict[str, str], start: bytes
) -> Iterator[bytes]:
    """The body of an answer whose head ``read_head`` read, piece by piece as it arrives.

    ``start`` is what came with the head. A body is delimited by its Content-Length, by
    chunked encoding, or by the server's close.
    """
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return
    if "chunked" in headers.get("transfer-encoding", "").lower():
        decoder = ChunkedDecoder()
        data = start
        while True:
            payload = decoder.feed(data)
            if payload:
                yield payload
            if decoder.done:
                return
            data = connection.recv(65536)
            if not data:
                raise ProtocolError("the daemon closed the connection inside a chunked answer")

    length = headers.get("content-length")
    remaining = int(length) if length is not None else None
    data = start
    while True:
        if remaining is not None:
            data = data[:remaining]
            remaining -= len(data)
        if data:
            yield data
        if remaining == 0:
            return
        data = connection.recv(65536)
        if not data:
            return  # ended by the close (or cut short: the caller sees what came)


def read_answer(connection: socket.socket, method: str) -> Answer:
    """Read one HTTP/1.1 answer from ``connection``."""
    status, headers, start = read_head(connection)
    body = b"".join(iter_body(connection, method, status, headers, start))
    return Answer(status, headers, body)


class ChunkedDecoder:
    """The payload of a chunked body fed in pieces of any size."""

    def __init__(self) -> None:
        self._pending = b""
        self._chunk_left = 0  # payload bytes of the current chunk still to come
        self._expect_crlf = False  # the CRLF after a chunk's payload
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """The payload bytes in ``data`` (and what was left of earlier pieces)."""
        pending = self._pending + data
        payload = bytearray()
        position = 0
        while not self.done:
            if self._chunk_left:
                piece = pending[position : position + self._chunk_left]
                payload += piece
                position += len(piece)
                self._chunk_left -= len(piece)
                if self._chunk_left:
                    break
                self._expect_crlf = True
            if self._expect_crlf:
                if len(pending) - position < 2:
                    break
                position += 2
                self._expect_crlf = False
            end = pending.find(b"\r\n", position)
            if end < 0:
                break
            size_text = pending[position:end].split(b";")[0].strip() or b"0"
            try:
                size = int(size_text, 16)
            except ValueError as error:
                raise ProtocolError(f"bad chunk size {size_text!r} in the answer") from error
            position = end + 2
            if size == 0:
                self.done = True  # trailers, if any, are not read
            self._chunk_left = size
        self._pending = pending[position:]
        return bytes(payload)


def error_from_answer(status: int, body: bytes) -> NsnetError:
    """The exception for an error answer: its category by status, its message from the body."""
    try:
        message = json.loads(body)["message"]
    except (ValueError, KeyError, TypeError):
        message = body.decode("utf-8", errors="replace").strip() or f"HTTP status {status}"
    error_class = ERRORS_BY_STATUS.get(status)
    if error_class is None:
        return DaemonError(message, status)
    return error_class(message)


def quote_ref(ref: str) -> str:
    """A network or container name as one path segment."""
    return quote(ref, safe="")


class Client:
    """Requests to nsnetd (or any Docker Engine API) on the unix socket ``socket_path``."""

    def __init__(self, socket_path: str, timeout: float | None = None) -> None:
        """Talk to the daemon at ``socket_path``; ``timeout`` bounds each socket operation (s).

        None waits without limit; a request's own ``timeout`` takes its place.
        """
        self.socket_path = socket_path
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        """Send one request; return (status, body) or raise the error the answer carries."""
        status, pieces = self.stream(method, path, body=body, query=query, timeout=timeout)
        return status, b"".join(pieces)

    def stream(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, Iterator[bytes]]:
        """Send one request; return its status and its body as pieces as they arrive.

        The request is sent and the head read before this returns, so an unreachable daemon
        (``ConnectionFailed``) and an error answer are raised here; a failure while the body
        arrives is raised by the iterator.
        """
        if query:
            path += "?" + urlencode(
                {name: value for name, value in query.items() if value is not None}
            )
        payload = b""
        content_type = ""
        if body is not None:
            payload = json.dumps(body).encode()
            content_type = "Content-Type: application/json\r\n"
        request = (
            f"{method} {path} HTTP/1.1\r\nHost: nsnetd\r\nUser-Agent: nsnet\r\n"
            f"Connection: close\r\n{content_type}Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        where = f"unix://{self.socket_path}"

        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(timeout or self.timeout)
        try:
            try:
                connection.connect(self.socket_path)
            except (FileNotFoundError, ConnectionRefusedError) as error:
                raise ConnectionFailed(
                    f"cannot connect to nsnetd at {where}: {error.strerror or error}",
                    no_listener=True,
                ) from error
            except OSError as error:
                raise ConnectionFailed(
                    f"cannot connect to {where}: {error.strerror or error}"
                ) from error
            try:
                connection.sendall(request)
                status, headers, start = read_head(connection)
                if status >= 400:
                    answer = b"".join(iter_body(connection, method, status, headers, start))
                    raise error_from_answer(status, answer)
            except OSError as error:
                raise Unavailable(f"cannot {method} {path} on {where}: {error}") from error
        except BaseException:
            connection.close()
            raise

        def pieces() -> Iterator[bytes]:
            try:
                yield from iter_body(connection, method, status, headers, start)
            except OSError as error:
                raise Unavailable(f"cannot {method} {path} on {where}: {error}") from error
            finally:
                connection.close()

        return status, pieces()

    def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        """GET a JSON answer."""
        return json.loads(self.request("GET", path, query=query)[1])

    def post(self, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        """POST, returning the JSON answer (None for an empty one)."""
        data = self.request("POST", path, body=body, query=query)[1]
        return json.loads(data) if data.strip() else None

    def delete(self, path: str, query: dict[str, Any] | None = None) -> None:
        """DELETE ``path``, raising the error the answer carries, if any."""
        self.request("DELETE", path, query=query)

    def ping(self, timeout: float | None = None) -> bool:
        """Whether a daemon answers ``GET /_ping`` with OK."""
        try:
            status, data = self.request("GET", "/_ping", timeout=timeout)
        except NsnetError:
            return False
        return status == 200 and data.strip() == b"OK"
