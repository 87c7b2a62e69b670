"""nsnet.client: error answers become NsnetError categories; an absent daemon is named."""

import socket
import tempfile
import threading
from pathlib import Path

import pytest

from nsnet.client import (
    ChunkedDecoder,
    Client,
    ConnectionFailed,
    DaemonError,
    ProtocolError,
    error_from_answer,
    read_answer,
)
from nsnet.errors import (
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    NsnetError,
    Unavailable,
)


@pytest.mark.parametrize(
    "status, category",
    [
        (400, InvalidArgument),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (503, Unavailable),
    ],
)
def test_an_error_answer_becomes_its_category(status: int, category: type) -> None:
    error = error_from_answer(status, b'{"message": "network nope not found"}')

    assert type(error) is category
    assert str(error) == "network nope not found"
    assert error.status == status


def test_another_status_keeps_its_number() -> None:
    error = error_from_answer(500, b'{"message": "boom"}')

    assert isinstance(error, DaemonError) and isinstance(error, NsnetError)
    assert error.status == 500 and str(error) == "boom"


def test_an_answer_without_json_keeps_its_text() -> None:
    assert str(error_from_answer(502, b"Bad Gateway\n")) == "Bad Gateway"
    assert str(error_from_answer(500, b"")) == "HTTP status 500"


def test_a_missing_socket_is_a_connection_failure() -> None:
    with tempfile.TemporaryDirectory() as directory:
        client = Client(str(Path(directory) / "absent.sock"))

        with pytest.raises(ConnectionFailed, match="cannot connect to nsnetd at unix://"):
            client.get("/networks")
        assert client.ping() is False


def test_a_dead_socket_is_a_connection_failure() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = str(Path(directory) / "dead.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.close()  # the file stays; nobody listens

        with pytest.raises(ConnectionFailed, match="Connection refused"):
            Client(path).get("/networks")


def test_a_request_reaches_the_server_as_http_with_json() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = str(Path(directory) / "echo.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        received = []

        def answer_once() -> None:
            connection, _ = listener.accept()
            with connection:
                data = b""
                while b"\r\n\r\n" not in data or not data.endswith(b"}"):
                    data += connection.recv(4096)
                received.append(data)
                body = b'{"message": "in use, sorry"}'
                connection.sendall(
                    b"HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )

        server = threading.Thread(target=answer_once)
        server.start()
        try:
            with pytest.raises(Conflict, match="in use, sorry"):
                Client(path, timeout=5).post("/networks/n1/connect", {"Container": "c1"})
        finally:
            server.join(timeout=5)
            listener.close()

    request = received[0].decode()
    assert request.startswith("POST /networks/n1/connect HTTP/1.1\r\n")
    assert "Content-Type: application/json" in request
    assert request.endswith('{"Container": "c1"}')


def answer_from(raw: bytes, method: str = "GET", pieces: int = 3):
    """What ``read_answer`` makes of ``raw`` arriving in a few pieces, then the peer's close."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        size = max(1, len(raw) // pieces)
        for start in range(0, len(raw), size):
            theirs.sendall(raw[start : start + size])
        theirs.shutdown(socket.SHUT_WR)
        return read_answer(ours, method)


def test_an_answer_with_a_content_length() -> None:
    answer = answer_from(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nApi-Version: 1.41\r\n\r\n[{}]")

    assert (answer.status, answer.body) == (200, b"[{}]")
    assert answer.headers["api-version"] == "1.41"


def test_a_chunked_answer() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nlogs\r\n6\r\n here\n\r\n0\r\n\r\n"
    )

    assert answer_from(raw, pieces=7).body == b"logs here\n"


def test_an_answer_ended_by_the_close() -> None:
    assert answer_from(b"HTTP/1.0 200 OK\r\n\r\nall of it").body == b"all of it"


def test_head_and_no_content_answers_have_no_body() -> None:
    assert answer_from(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "HEAD").body == b""
    assert answer_from(b"HTTP/1.1 204 No Content\r\n\r\n").status == 204


def test_a_non_http_answer_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not HTTP"):
        answer_from(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    with pytest.raises(ProtocolError, match="without answering"):
        answer_from(b"")


def test_a_chunked_answer_cut_short_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="inside a chunked answer"):
        answer_from(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nlo")


def test_chunks_are_decoded_from_pieces_of_any_size() -> None:
    body = b"4\r\nlogs\r\n1;name=value\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n"
    for size in (1, 2, 5, len(body)):
        decoder = ChunkedDecoder()
        payload = b""
        for start in range(0, len(body), size):
            payload += decoder.feed(body[start : start + size])
            if decoder.done:  # at the last chunk; its closing CRLF is not waited for
                break

        assert decoder.done and payload == b"logs 0123456789", size
    with pytest.raises(ProtocolError, match="bad chunk size"):
        ChunkedDecoder().feed(b"zz\r\n")


def test_a_streamed_body_arrives_piece_by_piece_before_the_answer_ends() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = str(Path(directory) / "stream.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        go_on = threading.Event()

        def answer_in_two_chunks() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"
                )
                go_on.wait(5)
                connection.sendall(b"6\r\nsecond\r\n0\r\n\r\n")

        server = threading.Thread(target=answer_in_two_chunks)
        server.start()
        try:
            status, pieces = Client(path, timeout=5).stream("GET", "/containers/c1/logs")
            first = next(pieces)  # while the server still holds back the rest
            go_on.set()
            rest = b"".join(pieces)
        finally:
            go_on.set()
            server.join(timeout=5)
            listener.close()

    assert (status, first, rest) == (200, b"first", b"second")
