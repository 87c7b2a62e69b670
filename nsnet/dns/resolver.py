"""What the embedded DNS server answers: local names from the index, everything else forwarded.

Decisions, in order, for one query from a container (its ``SandboxScope``):

- unreadable (a label or name too long, a truncated record...): FORMERR, if its header can
  be read; not a standard query (opcode), or not exactly one question: NOTIMP / FORMERR; an
  EDNS version other than 0: BADVERS (RFC 6891);
- A (or ANY) for a name on one of the asker's networks, bare (``web``) or qualified by that
  network (``web.backend``, see ``nsnet.dns.index``): its addresses, shuffled each time;
- any other type for such a name (AAAA, MX, TXT...): NODATA (NOERROR, no answers), so that a
  local name never leaks to the upstream servers and AAAA waits for IPv6;
- PTR under in-addr.arpa for an address on the asker's networks: its name;
- anything else: forwarded to the upstream servers, one after the other (at most
  ``MAX_UPSTREAMS``, each given ``timeout`` seconds), moving on after a timeout, a network
  error, SERVFAIL, REFUSED or an unusable answer; NOERROR and NXDOMAIN are final. That
  includes a local name with a search domain appended (``web.backend.example.com``, which a
  client with ``ndots`` above 1 asks first): not ours, as in Docker, so the client's next try,
  the name as given, is answered here;
- forwarding not allowed (a container only on ``--internal`` networks), no upstream server, or
  every upstream failed: SERVFAIL. SERVFAIL rather than REFUSED because it is what Docker answers
  in these cases and because it says the truth to the client ("no answer could be obtained"),
  where REFUSED would claim a policy of this server against the client.

Forwarding happens from the thread that runs the server's event loop, i.e. from the daemon's
host namespace: the sockets are made there, never in a container's namespace.

A UDP answer larger than the client's limit (512 bytes, or the size its EDNS option gives) is
cut to whole records and marked TC; over TCP the client gets everything.
"""

import asyncio
import logging
import random
import secrets
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from dnslib import EDNS0, PTR, QTYPE, RCODE, RR, A, DNSError, DNSHeader, DNSLabelError, DNSRecord
from dnslib.buffer import Buffer

from nsnet.dns.index import NameIndex
from nsnet.errors import InvalidArgument

log = logging.getLogger(__name__)

DNS_PORT = 53
MAX_UPSTREAMS = 3
UPSTREAM_TIMEOUT_SECONDS = 2.0  # per upstream: three dead ones cost at most 6 s
ANSWER_TTL = 600  # Docker's TTL for container names
MIN_UDP_SIZE = 512  # RFC 1035's limit for a UDP message without EDNS
MAX_MESSAGE_SIZE = 65535  # the most a TCP length prefix can carry
ADVERTISED_UDP_SIZE = 1232  # our EDNS buffer size, the 2020 DNS flag day's choice
MAX_CONCURRENT_FORWARDS = 1024  # Docker's bound on queries waiting for upstreams
CLASS_IN = 1
FLAG_QR = 1 << 15
FLAG_RA = 1 << 7
COPIED_FLAGS = (0xF << 11) | (1 << 8) | (1 << 4)  # opcode, RD and CD go back as asked
OPCODE_QUERY = 0
PTR_SUFFIX = ("in-addr", "arpa")

UDP = "udp"
TCP = "tcp"


@dataclass(frozen=True)
class Upstream:
    """An upstream DNS server the resolver forwards to."""

    address: IPv4Address | IPv6Address
    port: int = DNS_PORT

    @classmethod
    def parse(cls, text: str) -> "Upstream":
        """``192.0.2.53``, ``192.0.2.53:5353``, ``2001:db8::1`` or ``[2001:db8::1]:5353``."""
        value = text.strip()
        port = DNS_PORT
        try:
            if value.startswith("["):
                host, _, rest = value[1:].partition("]")
                if rest:
                    port = int(rest.removeprefix(":"))
                value = host
            elif value.count(":") == 1:
                value, port_text = value.split(":")
                port = int(port_text)
            address = ip_address(value.split("%")[0])
        except ValueError as error:
            raise InvalidArgument(f"cannot parse DNS server '{text}': {error}") from error
        if not 0 < port < 65536:
            raise InvalidArgument(f"cannot parse DNS server '{text}': port {port} out of range")
        return cls(address, port)

    def __str__(self) -> str:
        if self.port == DNS_PORT:
            return str(self.address)
        if self.address.version == 6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class SandboxScope:
    """What one container may see: its networks, whether it may forward, and to whom.

    ``upstreams`` are the container's own servers (``--dns``); None means the resolver's
    defaults (the daemon's option or the host's resolv.conf).
    """

    network_ids: frozenset[str]
    forwarding: bool = True
    upstreams: tuple[Upstream, ...] | None = None


# (upstream, message, transport) -> the upstream's reply. Tests inject fakes; the default
# talks to the network from the calling thread's namespace.
Exchange = Callable[[Upstream, bytes, str], Awaitable[bytes]]


async def exchange_with_upstream(upstream: Upstream, message: bytes, transport: str) -> bytes:
    """Send ``message`` to ``upstream`` over ``transport`` and return its reply.

    The socket is made here, in the namespace of the thread running the event loop. Over UDP
    the socket is connected, so only the upstream's datagrams arrive, and replies with another
    id are ignored. The caller bounds the time.
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if upstream.address.version == 6 else socket.AF_INET
    destination = (str(upstream.address), upstream.port)

    if transport == UDP:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect(destination)
            await loop.sock_sendall(sock, message)
            while True:
                reply = await loop.sock_recv(sock, MAX_MESSAGE_SIZE)
                if reply[:2] == message[:2]:
                    return reply

    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, destination)
        await loop.sock_sendall(sock, struct.pack("!H", len(message)) + message)
        (length,) = struct.unpack("!H", await _receive_exactly(loop, sock, 2))
        return await _receive_exactly(loop, sock, length)


async def _receive_exactly(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int
) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = await loop.sock_recv(sock, size - len(chunks))
        if not chunk:
            raise ConnectionError("the upstream closed the connection early")
        chunks += chunk
    return bytes(chunks)


def qname_text(record: DNSRecord) -> str:
    """The question's name as text, for logs and lookups."""
    return str(record.q.qname)


def client_limit(query: DNSRecord, transport: str) -> int:
    """The largest answer the client accepts: 512 bytes or its EDNS size over UDP."""
    if transport == TCP:
        return MAX_MESSAGE_SIZE
    sizes = [record.rclass for record in query.ar if record.rtype == QTYPE.OPT]
    return max([MIN_UDP_SIZE, *sizes])


def fit_to_size(response: DNSRecord, limit: int, transport: str) -> bytes:
    """``response`` packed into at most ``limit`` bytes.

    Additional records go first (keeping the EDNS option), then authority records, then
    answers from the end, as few as possible. Over UDP, a message that lost answers or
    authority records is marked TC so that the client asks again over TCP.
    """
    packed = response.pack()
    if len(packed) <= limit:
        return packed

    options = [record for record in response.ar if record.rtype == QTYPE.OPT]
    trimmed = _copy(response, answers=response.rr, authority=response.auth, additional=options)
    packed = trimmed.pack()
    if len(packed) <= limit:
        return packed

    # Binary search for the most answers that still fit.
    keep_low, keep_high = 0, len(response.rr)
    best = None
    while keep_low <= keep_high:
        keep = (keep_low + keep_high) // 2
        candidate = _copy(response, answers=response.rr[:keep], authority=[], additional=options)
        candidate.header.tc = 1 if transport == UDP else 0
        candidate_packed = candidate.pack()
        if len(candidate_packed) <= limit:
            best = candidate_packed
            keep_low = keep + 1
        else:
            keep_high = keep - 1
    if best is not None:
        return best

    # Not even the question fits next to the EDNS option: the bare header with TC.
    bare = DNSRecord(DNSHeader(id=response.header.id, bitmap=response.header.bitmap, tc=1))
    return bare.pack()


def _copy(response: DNSRecord, *, answers, authority, additional) -> DNSRecord:
    header = DNSHeader(id=response.header.id, bitmap=response.header.bitmap)
    return DNSRecord(
        header,
        questions=list(response.questions),
        rr=list(answers),
        auth=list(authority),
        ar=list(additional),
    )


EDNS_VERSION = 0  # the only one there is
MAX_NAME_LENGTH = 255  # bytes of a name on the wire (RFC 1035)
BADVERS = 16


def reply_to(query: DNSRecord, rcode: int = RCODE.NOERROR) -> DNSRecord:
    """An empty answer to ``query`` with ``rcode``, echoing its question and EDNS use."""
    # The flags as one bitmap: dnslib's keyword flags cost a third of a local answer's time.
    bitmap = FLAG_QR | FLAG_RA | (query.header.bitmap & COPIED_FLAGS) | rcode
    reply = DNSRecord(
        DNSHeader(id=query.header.id, bitmap=bitmap), questions=list(query.questions)
    )
    if any(record.rtype == QTYPE.OPT for record in query.ar):
        reply.add_ar(EDNS0(udp_len=ADVERTISED_UDP_SIZE))
    return reply


def ptr_address(query: DNSRecord) -> IPv4Address | None:
    """The IPv4 address a PTR question under in-addr.arpa asks about, or None."""
    labels = [label.decode("ascii", "replace").lower() for label in query.q.qname.label]
    if len(labels) != 6 or tuple(labels[4:]) != PTR_SUFFIX:
        return None
    try:
        return IPv4Address(".".join(reversed(labels[:4])))
    except ValueError:
        return None


class Resolver:
    """Answers queries for containers: the index first, then the upstream servers."""

    def __init__(
        self,
        index: NameIndex,
        upstreams: Iterable[Upstream] = (),
        *,
        timeout: float = UPSTREAM_TIMEOUT_SECONDS,
        exchange: Exchange | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Answer from ``index``, forwarding to ``upstreams`` (the first MAX_UPSTREAMS of them).

        ``timeout`` bounds each upstream's answer, in seconds. ``exchange`` (the exchange of one
        message with an upstream) and ``rng`` (the order of A answers) are there for tests.
        """
        self.index = index
        self.upstreams = self._bounded(tuple(upstreams))
        self.timeout = timeout
        self._exchange = exchange or exchange_with_upstream
        self._rng = rng or random.Random()
        self._forward_slots: asyncio.Semaphore | None = None

    @staticmethod
    def _bounded(upstreams: tuple[Upstream, ...]) -> tuple[Upstream, ...]:
        if len(upstreams) > MAX_UPSTREAMS:
            log.warning(
                "dns: using the first %d of %d upstream servers (%s)",
                MAX_UPSTREAMS,
                len(upstreams),
                ", ".join(str(upstream) for upstream in upstreams),
            )
        return upstreams[:MAX_UPSTREAMS]

    def set_upstreams(self, upstreams: Iterable[Upstream]) -> None:
        """Replace the default upstream servers (say, after the host's resolv.conf changed)."""
        self.upstreams = self._bounded(tuple(upstreams))

    def upstreams_for(self, scope: SandboxScope) -> tuple[Upstream, ...]:
        """The servers a container's queries go to: its own, else the defaults."""
        if scope.upstreams is not None:
            return self._bounded(scope.upstreams)
        return self.upstreams

    # Deciding

    def check(self, query: DNSRecord) -> DNSRecord | None:
        """A refusal for a query the server does not handle at all, or None."""
        if query.header.opcode != OPCODE_QUERY:
            return reply_to(query, RCODE.NOTIMP)
        if len(query.questions) != 1:
            return reply_to(query, RCODE.FORMERR)
        if sum(len(label) + 1 for label in query.q.qname.label) + 1 > MAX_NAME_LENGTH:
            # dnslib reads such a name but cannot write it back: answer without the question.
            bitmap = FLAG_QR | FLAG_RA | (query.header.bitmap & COPIED_FLAGS) | RCODE.FORMERR
            return DNSRecord(DNSHeader(id=query.header.id, bitmap=bitmap))
        for record in query.ar:
            if record.rtype == QTYPE.OPT and (record.ttl >> 16) & 0xFF != EDNS_VERSION:
                # BADVERS is 16: its upper bits go in the OPT record, its lower (0) in the header.
                reply = reply_to(query)
                reply.ar = [EDNS0(udp_len=ADVERTISED_UDP_SIZE, ext_rcode=BADVERS >> 4)]
                return reply
        return None

    def answer_locally(self, query: DNSRecord, scope: SandboxScope) -> DNSRecord | None:
        """The answer from the index, or None when the query must be forwarded."""
        question = query.q
        if question.qclass != CLASS_IN:
            return None

        address = ptr_address(query) if question.qtype == QTYPE.PTR else None
        if address is not None:
            name = self.index.reverse(scope.network_ids, address)
            if name is None:
                return None
            reply = reply_to(query)
            reply.add_answer(RR(question.qname, QTYPE.PTR, rdata=PTR(name + "."), ttl=ANSWER_TTL))
            return reply

        addresses = self.index.lookup(scope.network_ids, qname_text(query))
        if not addresses:
            return None
        reply = reply_to(query)
        if question.qtype in (QTYPE.A, QTYPE.ANY):
            self._rng.shuffle(addresses)
            for address in addresses:
                reply.add_answer(
                    RR(question.qname, QTYPE.A, rdata=A(str(address)), ttl=ANSWER_TTL)
                )
        # Any other type of a local name: NODATA (no IPv6 yet, no MX, TXT, PTR...).
        return reply

    # Forwarding

    async def forward(
        self, query: DNSRecord, upstreams: Sequence[Upstream], transport: str
    ) -> DNSRecord:
        """The first usable upstream answer to ``query``, else SERVFAIL."""
        name = qname_text(query)
        outgoing = DNSRecord.parse(query.pack())
        outgoing.header.id = secrets.randbits(16)  # ours, so that a reply cannot be guessed
        message = outgoing.pack()

        for upstream in upstreams[:MAX_UPSTREAMS]:
            reply = await self._ask(upstream, message, transport, name)
            if reply is None:
                continue
            if reply.header.id != outgoing.header.id or not _same_question(reply, outgoing):
                log.debug("dns: %s: mismatched answer from %s; moving on", name, upstream)
                continue
            if reply.header.rcode not in (RCODE.NOERROR, RCODE.NXDOMAIN):
                log.debug(
                    "dns: %s: %s answered %s; moving on",
                    name,
                    upstream,
                    RCODE.get(reply.header.rcode),
                )
                continue
            reply.header.id = query.header.id
            return reply

        if upstreams:
            log.info(
                "dns: %s: no upstream answered (%s); SERVFAIL",
                name,
                ", ".join(str(upstream) for upstream in upstreams[:MAX_UPSTREAMS]),
            )
        return reply_to(query, RCODE.SERVFAIL)

    async def _ask(
        self, upstream: Upstream, message: bytes, transport: str, name: str
    ) -> DNSRecord | None:
        if self._forward_slots is None:
            self._forward_slots = asyncio.Semaphore(MAX_CONCURRENT_FORWARDS)
        try:
            async with asyncio.timeout(self.timeout):
                async with self._forward_slots:
                    raw = await self._exchange(upstream, message, transport)
        except TimeoutError:
            log.debug("dns: %s: %s did not answer in %.1f s", name, upstream, self.timeout)
            return None
        except OSError as error:
            log.debug("dns: %s: cannot ask %s: %s", name, upstream, error)
            return None
        try:
            return DNSRecord.parse(raw)
        except DNSError as error:
            log.debug("dns: %s: unreadable answer from %s: %s", name, upstream, error)
            return None

    # The whole query

    async def resolve(self, query: DNSRecord, scope: SandboxScope, transport: str) -> DNSRecord:
        """The answer to one parsed query from a container."""
        refusal = self.check(query)
        if refusal is not None:
            return refusal
        local = self.answer_locally(query, scope)
        if local is not None:
            return local
        return await self.complete(query, scope, transport)

    async def complete(self, query: DNSRecord, scope: SandboxScope, transport: str) -> DNSRecord:
        """Answer a query the index could not: forward it, if allowed, else SERVFAIL."""
        upstreams = self.upstreams_for(scope)
        if not scope.forwarding or not upstreams:
            log.debug(
                "dns: %s: %s; SERVFAIL",
                qname_text(query),
                "forwarding not allowed" if not scope.forwarding else "no upstream servers",
            )
            return reply_to(query, RCODE.SERVFAIL)
        return await self.forward(query, upstreams, transport)

    def prepare(
        self, data: bytes, scope: SandboxScope, transport: str
    ) -> tuple[bytes | None, DNSRecord | None]:
        """Handle a raw query as far as possible without waiting.

        Returns ``(reply, None)`` for an immediate reply, ``(None, query)`` when the query must
        be forwarded (finish with ``finish``), and ``(None, None)`` when nothing is to be sent.
        """
        try:
            query = DNSRecord.parse(data)
        except (DNSError, DNSLabelError, ValueError, IndexError, struct.error):
            return _format_error(data), None
        if query.header.qr:
            return None, None  # a response sent to us: never answer one

        immediate = self.check(query) or self.answer_locally(query, scope)
        if immediate is not None:
            return fit_to_size(immediate, client_limit(query, transport), transport), None
        return None, query

    async def finish(self, query: DNSRecord, scope: SandboxScope, transport: str) -> bytes:
        """The packed answer to a query that ``prepare`` left for forwarding."""
        reply = await self.complete(query, scope, transport)
        return fit_to_size(reply, client_limit(query, transport), transport)

    async def handle(self, data: bytes, scope: SandboxScope, transport: str) -> bytes | None:
        """The packed answer to a raw query (None: send nothing)."""
        reply, pending = self.prepare(data, scope, transport)
        if pending is None:
            return reply
        return await self.finish(pending, scope, transport)


def _same_question(reply: DNSRecord, query: DNSRecord) -> bool:
    if len(reply.questions) != 1:
        return False
    asked, answered = query.q, reply.q
    return (
        asked.qtype == answered.qtype
        and asked.qclass == answered.qclass
        and str(asked.qname).lower() == str(answered.qname).lower()
    )


def _format_error(data: bytes) -> bytes | None:
    """FORMERR for an unreadable query whose header at least can be read."""
    if len(data) < 12:
        return None
    try:
        header = DNSHeader.parse(Buffer(data))
    except (DNSError, struct.error):
        return None
    if header.qr:
        return None
    reply = DNSHeader(id=header.id, qr=1, opcode=header.opcode, rd=header.rd, ra=1)
    reply.rcode = RCODE.FORMERR
    return DNSRecord(reply).pack()
