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


def read_answer(connection: socket.socket, method: str) -> Answer:
    """Read one HTTP/1.1 answer from ``connection``."""
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

    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return Answer(status, headers, b"")
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length = None if chunked else headers.get("content-length")
    while True:
        if length is not None and len(body) >= int(length):
            return Answer(status, headers, body[: int(length)])
        if chunked:
            payload = dechunk(body)
            if payload is not None:
                return Answer(status, headers, payload)
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    if chunked:
        return Answer(status, headers, dechunk(body) or b"")
    return Answer(status, headers, body)


def dechunk(data: bytes) -> bytes | None:
    """The payload of a complete chunked body; None while the last chunk has not arrived."""
    payload = b""
    position = 0
    while True:
        end = data.find(b"\r\n", position)
        if end < 0:
            return None
        size = int(data[position:end].split(b";")[0] or b"0", 16)
        if size == 0:
            return payload
        start = end + 2
        if len(data) < start + size + 2:
            return None
        payload += data[start : start + size]
        position = start + size + 2


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

        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(timeout or self.timeout)
        try:
            try:
                connection.connect(self.socket_path)
            except (FileNotFoundError, ConnectionRefusedError) as error:
                raise ConnectionFailed(
                    f"cannot connect to nsnetd at unix://{self.socket_path}:"
                    f" {error.strerror or error}",
                    no_listener=True,
                ) from error
            except OSError as error:
                raise ConnectionFailed(
                    f"cannot connect to unix://{self.socket_path}: {error.strerror or error}"
                ) from error
            try:
                connection.sendall(request)
                answer = read_answer(connection, method)
            except OSError as error:
                raise Unavailable(
                    f"cannot {method} {path} on unix://{self.socket_path}: {error}"
                ) from error
        finally:
            connection.close()

        if answer.status >= 400:
            raise error_from_answer(answer.status, answer.body)
        return answer.status, answer.body

    def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        """GET a JSON answer."""
        return json.loads(self.request("GET", path, query=query)[1])

    def post(self, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        """POST, returning the JSON answer (None for an empty one)."""
        data = self.request("POST", path, body=body, query=query)[1]
        return json.loads(data) if data.strip() else None

    def delete(self, path: str, query: dict[str, Any] | None = None) -> None:
        self.request("DELETE", path, query=query)

    def ping(self, timeout: float | None = None) -> bool:
        """Whether a daemon answers ``GET /_ping`` with OK."""
        try:
            status, data = self.request("GET", "/_ping", timeout=timeout)
        except NsnetError:
            return False
        return status == 200 and data.strip() == b"OK"
