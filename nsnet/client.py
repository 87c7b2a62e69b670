"""A small client of nsnetd's API: HTTP/1.1 over a unix socket with the standard library.

Kept to ``http.client`` and ``json`` so that the CLI starts fast. An answer with a 4xx/5xx
status becomes the ``NsnetError`` subclass of that status, carrying the daemon's message; a
daemon that cannot be reached is ``Unavailable``.
"""

import http.client
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
    """No daemon could be reached: the request was not sent (safe to send again)."""


class UnixHTTPConnection(http.client.HTTPConnection):
    """An ``HTTPConnection`` over a unix stream socket."""

    def __init__(self, socket_path: str, timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


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
        headers = {"Host": "nsnetd"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"

        connection = UnixHTTPConnection(self.socket_path, timeout=timeout or self.timeout)
        try:
            try:
                connection.connect()
            except (FileNotFoundError, ConnectionRefusedError) as error:
                raise ConnectionFailed(
                    f"cannot connect to nsnetd at unix://{self.socket_path}:"
                    f" {error.strerror or error}"
                ) from error
            except OSError as error:
                raise ConnectionFailed(
                    f"cannot connect to unix://{self.socket_path}: {error.strerror or error}"
                ) from error
            try:
                connection.request(method, path, body=payload, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException) as error:
                raise Unavailable(
                    f"cannot {method} {path} on unix://{self.socket_path}: {error}"
                ) from error
        finally:
            connection.close()

        if answer.status >= 400:
            raise error_from_answer(answer.status, data)
        return answer.status, data

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
