"""The resolver's decisions: local answers, NODATA, PTR, forwarding, failures, truncation.

Upstream servers are fakes handed to the resolver as its ``exchange`` function: no socket is
opened by these tests.
"""

import asyncio
import random
import time
from ipaddress import IPv4Address

from dnslib import EDNS0, QTYPE, RCODE, RR, A, DNSRecord

from nsnet.dns.index import NameIndex
from nsnet.dns.resolver import (
    MIN_UDP_SIZE,
    TCP,
    UDP,
    Resolver,
    SandboxScope,
    Upstream,
    fit_to_size,
)

NET_A = "a" * 64
NET_B = "b" * 64
FIRST = Upstream.parse("192.0.2.53")
SECOND = Upstream.parse("192.0.2.54")
THIRD = Upstream.parse("192.0.2.55")
FOURTH = Upstream.parse("192.0.2.56")
ON_A = SandboxScope(network_ids=frozenset({NET_A}))
ON_B = SandboxScope(network_ids=frozenset({NET_B}))


class FakeUpstreams:
    """Upstreams that answer by behaviour: "answer", "servfail", "refused", "nxdomain",
    "silent" (never answers), "unreachable" (connection refused), "wrong-id"."""

    def __init__(self, **behaviours: str) -> None:
        self.behaviours = {
            Upstream.parse(key.replace("_", ".")): value for key, value in behaviours.items()
        }
        self.asked: list[tuple[Upstream, str]] = []

    async def __call__(self, upstream: Upstream, message: bytes, transport: str) -> bytes:
        self.asked.append((upstream, transport))
        query = DNSRecord.parse(message)
        behaviour = self.behaviours.get(upstream, "silent")
        if behaviour == "silent":
            await asyncio.sleep(3600)
        if behaviour == "unreachable":
            raise ConnectionRefusedError(111, "Connection refused")
        reply = query.reply(ra=1, aa=0)
        if behaviour == "answer":
            reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A("198.51.100.7"), ttl=60))
        elif behaviour == "big":
            for number in range(100):
                reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(f"198.51.100.{number}")))
        elif behaviour == "wrong-id":
            reply.header.id = (query.header.id + 1) % 65536
            reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A("203.0.113.66"), ttl=60))
        else:
            reply.header.rcode = {
                "servfail": RCODE.SERVFAIL,
                "refused": RCODE.REFUSED,
                "nxdomain": RCODE.NXDOMAIN,
            }[behaviour]
        return reply.pack()


def make_resolver(upstreams=(), exchange=None, timeout=0.05, seed=7) -> Resolver:
    index = NameIndex()
    index.add(
        NET_A, "endpoint-web", ["web", "www"], "10.1.0.2", network_name="front",
        ptr_name="web.front",
    )  # fmt: skip
    index.add(NET_A, "endpoint-api-1", ["api-1", "api"], "10.1.0.3", network_name="front")
    index.add(NET_A, "endpoint-api-2", ["api-2", "api"], "10.1.0.4", network_name="front")
    index.add(NET_A, "endpoint-api-3", ["api-3", "api"], "10.1.0.5", network_name="front")
    index.add(NET_B, "endpoint-db", ["db"], "10.2.0.2", network_name="back")
    return Resolver(
        index,
        upstreams,
        timeout=timeout,
        exchange=exchange or FakeUpstreams(),
        rng=random.Random(seed),
    )


def ask(
    resolver: Resolver,
    name: str,
    qtype: str = "A",
    scope: SandboxScope = ON_A,
    transport: str = UDP,
    edns: int | None = None,
) -> DNSRecord:
    query = DNSRecord.question(name, qtype)
    if edns is not None:
        query.add_ar(EDNS0(udp_len=edns))
    raw = asyncio.run(resolver.handle(query.pack(), scope, transport))
    reply = DNSRecord.parse(raw)
    assert reply.header.id == query.header.id
    assert reply.header.qr == 1
    return reply


def answer_addresses(reply: DNSRecord) -> list[str]:
    return [str(record.rdata) for record in reply.rr if record.rtype == QTYPE.A]


# Local names


def test_a_known_name_is_answered_from_the_index() -> None:
    reply = ask(make_resolver(), "web")

    assert reply.header.rcode == RCODE.NOERROR
    assert answer_addresses(reply) == ["10.1.0.2"]
    assert reply.rr[0].ttl == 600
    assert reply.header.ra == 1 and reply.header.tc == 0


def test_names_ignore_case_and_keep_the_question_as_asked() -> None:
    reply = ask(make_resolver(), "WwW.")

    assert answer_addresses(reply) == ["10.1.0.2"]
    assert str(reply.rr[0].rname) == "WwW."


def test_an_alias_gives_every_address_in_a_changing_order() -> None:
    resolver = make_resolver()

    orders = {tuple(answer_addresses(ask(resolver, "api"))) for _ in range(20)}

    assert all(sorted(order) == ["10.1.0.3", "10.1.0.4", "10.1.0.5"] for order in orders)
    assert len(orders) > 1


def test_names_of_other_networks_are_not_answered_locally() -> None:
    upstreams = FakeUpstreams(**{"192_0_2_53": "nxdomain"})
    resolver = make_resolver([FIRST], upstreams)

    reply = ask(resolver, "db", scope=ON_A)

    assert reply.header.rcode == RCODE.NXDOMAIN
    assert upstreams.asked == [(FIRST, UDP)]
    assert answer_addresses(ask(resolver, "db", scope=ON_B)) == ["10.2.0.2"]


def test_a_name_qualified_by_a_shared_network_is_answered_from_the_index() -> None:
    """Regression: ``web.front`` was forwarded (SERVFAIL without an upstream)."""
    upstreams = FakeUpstreams(**{"192_0_2_53": "nxdomain"})
    resolver = make_resolver([FIRST], upstreams)

    reply = ask(resolver, "Web.Front.")
    assert reply.header.rcode == RCODE.NOERROR
    assert answer_addresses(reply) == ["10.1.0.2"]
    assert str(reply.rr[0].rname) == "Web.Front."
    assert sorted(answer_addresses(ask(resolver, "api.front"))) == [
        "10.1.0.3",
        "10.1.0.4",
        "10.1.0.5",
    ]
    no_ipv6 = ask(resolver, "www.front", "AAAA")
    assert (no_ipv6.header.rcode, no_ipv6.rr) == (RCODE.NOERROR, [])
    assert answer_addresses(ask(resolver, "db.back", scope=ON_B)) == ["10.2.0.2"]
    assert upstreams.asked == []

    # The reverse name of an address resolves forward again.
    (pointer,) = ask(resolver, "2.0.1.10.in-addr.arpa", "PTR").rr
    assert answer_addresses(ask(resolver, str(pointer.rdata))) == ["10.1.0.2"]


def test_a_name_qualified_by_a_network_the_asker_is_not_on_is_forwarded() -> None:
    upstreams = FakeUpstreams(**{"192_0_2_53": "nxdomain"})

    reply = ask(make_resolver([FIRST], upstreams), "db.back", scope=ON_A)

    assert reply.header.rcode == RCODE.NXDOMAIN
    assert upstreams.asked == [(FIRST, UDP)]


def test_a_local_name_with_a_search_domain_appended_is_forwarded() -> None:
    """``web.front.example.com`` is what a client with ndots above 1 asks first: not ours."""
    upstreams = FakeUpstreams(**{"192_0_2_53": "answer"})

    reply = ask(make_resolver([FIRST], upstreams), "web.front.example.com")

    assert answer_addresses(reply) == ["198.51.100.7"]  # the upstream's answer
    assert str(reply.rr[0].rname) == "web.front.example.com."
    assert upstreams.asked == [(FIRST, UDP)]


def test_aaaa_of_a_known_name_is_nodata_and_never_forwarded() -> None:
    upstreams = FakeUpstreams(**{"192_0_2_53": "answer"})
    resolver = make_resolver([FIRST], upstreams)

    reply = ask(resolver, "web", "AAAA")

    assert reply.header.rcode == RCODE.NOERROR
    assert reply.rr == []
    assert upstreams.asked == []


def test_other_types_of_a_known_name_are_nodata() -> None:
    reply = ask(make_resolver([FIRST], FakeUpstreams(**{"192_0_2_53": "answer"})), "web", "MX")

    assert reply.header.rcode == RCODE.NOERROR
    assert reply.rr == []


def test_ptr_of_a_known_address_gives_its_name() -> None:
    reply = ask(make_resolver(), "2.0.1.10.in-addr.arpa", "PTR")

    assert reply.header.rcode == RCODE.NOERROR
    assert [str(record.rdata) for record in reply.rr] == ["web.front."]


def test_ptr_of_a_known_name_is_nodata() -> None:
    reply = ask(make_resolver([FIRST], FakeUpstreams(**{"192_0_2_53": "answer"})), "web", "PTR")

    assert reply.header.rcode == RCODE.NOERROR
    assert reply.rr == []


def test_ptr_of_an_address_on_another_network_is_forwarded() -> None:
    upstreams = FakeUpstreams(**{"192_0_2_53": "nxdomain"})

    reply = ask(make_resolver([FIRST], upstreams), "2.0.2.10.in-addr.arpa", "PTR")

    assert reply.header.rcode == RCODE.NXDOMAIN
    assert len(upstreams.asked) == 1


def test_an_edns_query_gets_an_edns_answer() -> None:
    reply = ask(make_resolver(), "web", edns=1232)

    assert [record.rtype for record in reply.ar] == [QTYPE.OPT]


# Forwarding


def test_unknown_names_are_forwarded_and_the_answer_keeps_the_client_id() -> None:
    upstreams = FakeUpstreams(**{"192_0_2_53": "answer"})

    reply = ask(make_resolver([FIRST], upstreams), "example.test")

    assert answer_addresses(reply) == ["198.51.100.7"]
    assert upstreams.asked == [(FIRST, UDP)]


def test_a_tcp_query_is_forwarded_over_tcp() -> None:
    upstreams = FakeUpstreams(**{"192_0_2_53": "answer"})

    ask(make_resolver([FIRST], upstreams), "example.test", transport=TCP)

    assert upstreams.asked == [(FIRST, TCP)]


def test_a_silent_upstream_times_out_and_the_next_one_answers() -> None:
    upstreams = FakeUpstreams(**{"192_0_2_53": "silent", "192_0_2_54": "answer"})
    resolver = make_resolver([FIRST, SECOND], upstreams, timeout=0.2)

    started = time.monotonic()
    reply = ask(resolver, "example.test")
    elapsed = time.monotonic() - started

    assert answer_addresses(reply) == ["198.51.100.7"]
    assert 0.2 <= elapsed < 1.0
    assert [upstream for upstream, _ in upstreams.asked] == [FIRST, SECOND]


def test_servfail_refused_unreachable_and_bad_ids_move_on() -> None:
    upstreams = FakeUpstreams(
        **{"192_0_2_53": "servfail", "192_0_2_54": "refused", "192_0_2_55": "answer"}
    )
    assert answer_addresses(ask(make_resolver([FIRST, SECOND, THIRD], upstreams), "x.test")) == [
        "198.51.100.7"
    ]

    upstreams = FakeUpstreams(**{"192_0_2_53": "unreachable", "192_0_2_54": "wrong-id"})
    reply = ask(make_resolver([FIRST, SECOND], upstreams), "x.test")
    assert reply.header.rcode == RCODE.SERVFAIL
    assert len(upstreams.asked) == 2


def test_nxdomain_is_a_final_answer() -> None:
    upstreams = FakeUpstreams(**{"192_0_2_53": "nxdomain", "192_0_2_54": "answer"})

    reply = ask(make_resolver([FIRST, SECOND], upstreams), "missing.test")

    assert reply.header.rcode == RCODE.NXDOMAIN
    assert len(upstreams.asked) == 1


def test_when_every_upstream_fails_the_answer_is_servfail_within_the_timeouts() -> None:
    upstreams = FakeUpstreams()  # all silent
    resolver = make_resolver([FIRST, SECOND, THIRD], upstreams, timeout=0.1)

    started = time.monotonic()
    reply = ask(resolver, "example.test")
    elapsed = time.monotonic() - started

    assert reply.header.rcode == RCODE.SERVFAIL
    assert 0.3 <= elapsed < 1.0


def test_at_most_three_upstreams_are_asked() -> None:
    upstreams = FakeUpstreams(**{"192_0_2_56": "answer"})  # the fourth would answer
    resolver = make_resolver([FIRST, SECOND, THIRD, FOURTH], upstreams, timeout=0.02)

    reply = ask(resolver, "example.test")

    assert reply.header.rcode == RCODE.SERVFAIL
    assert [upstream for upstream, _ in upstreams.asked] == [FIRST, SECOND, THIRD]


def test_no_forwarding_for_internal_networks() -> None:
    upstreams = FakeUpstreams(**{"192_0_2_53": "answer"})
    internal = SandboxScope(network_ids=frozenset({NET_A}), forwarding=False)
    resolver = make_resolver([FIRST], upstreams)

    assert ask(resolver, "example.test", scope=internal).header.rcode == RCODE.SERVFAIL
    assert answer_addresses(ask(resolver, "web", scope=internal)) == ["10.1.0.2"]
    assert upstreams.asked == []


def test_no_upstream_servers_is_servfail() -> None:
    assert ask(make_resolver([]), "example.test").header.rcode == RCODE.SERVFAIL


def test_a_containers_own_servers_replace_the_defaults() -> None:
    upstreams = FakeUpstreams(**{"192_0_2_54": "answer"})
    own = SandboxScope(network_ids=frozenset({NET_A}), upstreams=(SECOND,))

    reply = ask(make_resolver([FIRST], upstreams), "example.test", scope=own)

    assert answer_addresses(reply) == ["198.51.100.7"]
    assert [upstream for upstream, _ in upstreams.asked] == [SECOND]


# Size limits


def crowded_resolver(count: int = 60) -> Resolver:
    resolver = make_resolver()
    for number in range(count):
        address = IPv4Address("10.1.1.0") + number + 1
        resolver.index.add(NET_A, f"endpoint-many-{number}", [f"m{number}", "many"], address)
    return resolver


def test_a_large_udp_answer_is_truncated_with_tc() -> None:
    query = DNSRecord.question("many", "A")
    raw = asyncio.run(crowded_resolver().handle(query.pack(), ON_A, UDP))
    reply = DNSRecord.parse(raw)

    assert len(raw) <= MIN_UDP_SIZE
    assert reply.header.tc == 1
    assert 0 < len(reply.rr) < 60


def test_the_clients_edns_size_raises_the_udp_limit() -> None:
    reply = ask(crowded_resolver(), "many", edns=4096)

    assert reply.header.tc == 0
    assert len(reply.rr) == 60


def test_tcp_gets_the_full_answer() -> None:
    reply = ask(crowded_resolver(), "many", transport=TCP)

    assert reply.header.tc == 0
    assert len(reply.rr) == 60


def test_a_large_forwarded_answer_is_truncated_for_udp_too() -> None:
    upstreams = FakeUpstreams(**{"192_0_2_53": "big"})
    query = DNSRecord.question("big.test", "A")

    raw = asyncio.run(make_resolver([FIRST], upstreams).handle(query.pack(), ON_A, UDP))

    assert len(raw) <= MIN_UDP_SIZE
    assert DNSRecord.parse(raw).header.tc == 1


def test_fit_to_size_drops_additional_records_before_answers() -> None:
    query = DNSRecord.question("web", "A")
    query.add_ar(EDNS0(udp_len=512))
    reply = query.reply()
    reply.add_answer(RR("web", QTYPE.A, rdata=A("10.1.0.2")))
    for number in range(40):
        reply.add_ar(RR(f"glue{number}.test", QTYPE.A, rdata=A("192.0.2.9")))
    reply.add_ar(EDNS0(udp_len=1232))

    trimmed = DNSRecord.parse(fit_to_size(reply, 512, UDP))

    assert trimmed.header.tc == 0
    assert len(trimmed.rr) == 1
    assert [record.rtype for record in trimmed.ar] == [QTYPE.OPT]


# Malformed and unusual queries


def test_garbage_gets_formerr_when_the_header_is_readable() -> None:
    resolver = make_resolver()
    raw = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05trunc"

    reply = DNSRecord.parse(asyncio.run(resolver.handle(raw, ON_A, UDP)))

    assert reply.header.id == 0x1234
    assert reply.header.rcode == RCODE.FORMERR
    assert asyncio.run(resolver.handle(b"\x00", ON_A, UDP)) is None


def test_a_name_longer_than_dns_allows_gets_formerr() -> None:
    header = b"\x43\x21\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    name = (b"\x3f" + b"a" * 63) * 4 + b"\x00"  # four 63-byte labels: 257 bytes in all
    raw = header + name + b"\x00\x01\x00\x01"

    reply = DNSRecord.parse(asyncio.run(make_resolver().handle(raw, ON_A, UDP)))

    assert (reply.header.id, reply.header.rcode) == (0x4321, RCODE.FORMERR)


def test_an_edns_version_other_than_0_gets_badvers() -> None:
    query = DNSRecord.question("web", "A")
    query.add_ar(EDNS0(udp_len=1232, version=5))

    reply = DNSRecord.parse(asyncio.run(make_resolver().handle(query.pack(), ON_A, UDP)))

    assert reply.rr == [] and reply.header.rcode == 0
    [opt] = reply.ar
    assert opt.rtype == QTYPE.OPT and (opt.ttl >> 24) == 1  # BADVERS = 16: 1 << 4 | 0
    assert (opt.ttl >> 16) & 0xFF == 0  # the version the server speaks


def test_responses_are_never_answered() -> None:
    response = DNSRecord.question("web", "A").reply()

    assert asyncio.run(make_resolver().handle(response.pack(), ON_A, UDP)) is None


def test_other_opcodes_are_not_implemented() -> None:
    query = DNSRecord.question("web", "A")
    query.header.opcode = 4  # NOTIFY

    reply = DNSRecord.parse(asyncio.run(make_resolver().handle(query.pack(), ON_A, UDP)))

    assert reply.header.rcode == RCODE.NOTIMP


def test_upstream_parsing() -> None:
    assert str(Upstream.parse("192.0.2.53")) == "192.0.2.53"
    assert Upstream.parse("192.0.2.53:5353").port == 5353
    assert Upstream.parse("[2001:db8::1]:5353").port == 5353
    assert str(Upstream.parse("2001:db8::1").address) == "2001:db8::1"
