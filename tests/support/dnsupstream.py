"""A tiny upstream DNS server for tests, run inside an "outside" namespace.

    nsenter --net=OUTSIDE python -m tests.support.dnsupstream --address 192.0.2.53 \
        --record example.test=198.51.100.7 --many big.test=100

It answers A queries over UDP and TCP from its records (authoritatively), NXDOMAIN for any other
name, and prints "ready" once both sockets listen. With ``--log FILE`` it appends the source
address of each query to FILE, so a test can tell where forwarded queries came from (a file,
not stdout, so that nobody has to drain a pipe); ``--log-names FILE`` likewise appends the name
each query asks for, so a test can tell which names left the host. ``--silent`` makes it
read queries and never answer, standing in for a dead upstream. Built on dnslib, like the
server under test.
"""

import argparse
import socket
import struct
import sys
import threading
from ipaddress import IPv4Address

from dnslib import QTYPE, RCODE, RR, A, DNSError, DNSRecord

ANSWER_TTL = 60


class Zone:
    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}

    def add(self, name: str, addresses: list[str]) -> None:
        self.records.setdefault(name.rstrip(".").lower(), []).extend(addresses)

    def answer(self, data: bytes) -> bytes | None:
        try:
            query = DNSRecord.parse(data)
        except DNSError:
            return None
        reply = query.reply(ra=1, aa=1)
        addresses = self.records.get(str(query.q.qname).rstrip(".").lower())
        if addresses is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif query.q.qtype == QTYPE.A:
            for address in addresses:
                reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(address), ttl=ANSWER_TTL))
        return reply.pack()


LOG_PATH: str | None = None
NAMES_PATH: str | None = None


def note(client: tuple[str, int]) -> None:
    if LOG_PATH is not None:
        with open(LOG_PATH, "a") as log:
            log.write(f"{client[0]}\n")


def note_name(data: bytes) -> None:
    if NAMES_PATH is None:
        return
    try:
        name = str(DNSRecord.parse(data).q.qname)
    except DNSError:
        name = "(unreadable)"
    with open(NAMES_PATH, "a") as log:
        log.write(f"{name}\n")


def serve_udp(sock: socket.socket, zone: Zone, silent: bool) -> None:
    while True:
        data, client = sock.recvfrom(65535)
        note(client)
        note_name(data)
        reply = None if silent else zone.answer(data)
        if reply is not None:
            sock.sendto(reply, client)


def serve_tcp(sock: socket.socket, zone: Zone, silent: bool) -> None:
    while True:
        connection, client = sock.accept()
        note(client)
        threading.Thread(
            target=serve_connection, args=(connection, zone, silent), daemon=True
        ).start()


def serve_connection(connection: socket.socket, zone: Zone, silent: bool) -> None:
    with connection:
        while True:
            header = connection.recv(2, socket.MSG_WAITALL)
            if len(header) < 2:
                return
            (length,) = struct.unpack("!H", header)
            data = connection.recv(length, socket.MSG_WAITALL)
            note_name(data)
            reply = None if silent else zone.answer(data)
            if reply is not None:
                connection.sendall(struct.pack("!H", len(reply)) + reply)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--record", action="append", default=[], help="NAME=ADDRESS")
    parser.add_argument("--many", action="append", default=[], help="NAME=COUNT A records")
    parser.add_argument("--silent", action="store_true", help="never answer")
    parser.add_argument("--log", help="append the source address of each query here")
    parser.add_argument("--log-names", help="append the name each query asks for here")
    arguments = parser.parse_args()

    global LOG_PATH, NAMES_PATH
    LOG_PATH = arguments.log
    NAMES_PATH = arguments.log_names

    zone = Zone()
    for item in arguments.record:
        name, address = item.split("=")
        zone.add(name, [address])
    for item in arguments.many:
        name, count = item.split("=")
        first = IPv4Address("198.51.100.1")
        zone.add(name, [str(first + number) for number in range(int(count))])

    udp_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp_socket.bind((arguments.address, arguments.port))
    tcp_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp_socket.bind((arguments.address, arguments.port))
    tcp_socket.listen(16)

    threading.Thread(
        target=serve_tcp, args=(tcp_socket, zone, arguments.silent), daemon=True
    ).start()
    print("ready", flush=True)
    serve_udp(udp_socket, zone, arguments.silent)


if __name__ == "__main__":
    sys.exit(main())
