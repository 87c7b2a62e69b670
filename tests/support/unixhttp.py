"""Plain HTTP/1.1 over a unix socket, to talk to nsnetd and dockerd without a client library."""

import http.client
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class UnixHTTPConnection(http.client.HTTPConnection):
    """An ``HTTPConnection`` whose transport is a unix stream socket."""

    def __init__(self, socket_path: str | Path, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = str(socket_path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


@dataclass
class Response:
    """An HTTP answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def request(
    socket_path: str | Path,
    method: str,
    path: str,
    body: Any = None,
    timeout: float = 30,
) -> Response:
    """Send one request; ``body`` other than bytes/str/None is sent as JSON."""
    headers = {}
    if body is not None and not isinstance(body, bytes | str):
        body = json.dumps(body)
        headers["Content-Type"] = "application/json"

    connection = UnixHTTPConnection(socket_path, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        return Response(
            status=answer.status,
            headers={name.lower(): value for name, value in answer.getheaders()},
            body=answer.read(),
        )
    finally:
        connection.close()
