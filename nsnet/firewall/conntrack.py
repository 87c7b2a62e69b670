"""Deleting conntrack entries by a filter, in one request the kernel carries out itself.

A ctnetlink delete request that holds a CTA_FILTER makes the kernel delete every entry of the
caller's namespace that matches it: one sendmsg, nothing copied to us, about 0.2 ms here. The
older way, a filtered dump and then a delete per entry, took about 10 ms per dump even with
nothing to find, because a dump walks the whole conntrack table (shared by every namespace on
the machine) through many callbacks. Kernels that predate filters on deletion answer EINVAL
or EOPNOTSUPP; ``FilterUnsupported`` tells the caller to fall back to dumping.

The socket is opened per call, so it acts in the calling thread's network namespace.
"""

import errno
import socket
import struct

from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST, NLMSG_ERROR
from pyroute2.netlink.nfnetlink import NFNL_SUBSYS_CTNETLINK
from pyroute2.netlink.nfnetlink.nfctsocket import (
    IPCTNL_MSG_CT_DELETE,
    NFCTAttrTuple,
    nfct_msg,
)

from nsnet.errors import Unavailable

NETLINK_NETFILTER = 12
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
ORIGINAL, REPLY = "original", "reply"
_FILTER_FLAGS = {ORIGINAL: "CTA_FILTER_ORIG_FLAGS", REPLY: "CTA_FILTER_REPLY_FLAGS"}
_TUPLE = {ORIGINAL: "tuple_orig", REPLY: "tuple_reply"}


class FilterUnsupported(Exception):
    """The kernel cannot delete conntrack entries by a filter."""


def delete_matching(direction: str, **fields: str | int) -> None:
    """Delete the IPv4 entries whose ``direction`` tuple (ORIGINAL or REPLY) has ``fields``.

    ``fields`` are NFCTAttrTuple's: ``saddr``, ``daddr``, ``proto``, ``sport``, ``dport``; all
    must match. An entry gone meanwhile, or none matching, is no error.
    """
    wanted = NFCTAttrTuple(**fields)
    wanted.attrs()  # computes the filter's flags
    message = nfct_msg.create_from(
        **{_TUPLE[direction]: wanted},
        cta_filter={"attrs": [[_FILTER_FLAGS[direction], wanted.flags]]},
    )
    message["nfgen_family"] = socket.AF_INET
    message["version"] = 0
    message["res_id"] = 0
    header = message["header"]
    header["type"] = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE
    header["flags"] = NLM_F_REQUEST | NLM_F_ACK
    header["sequence_number"] = 1
    message.encode()

    what = f"the {direction} direction's {fields}"
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as channel:
            channel.bind((0, 0))
            channel.send(message.data)
            answer = channel.recv(65536)
    except OSError as error:
        raise Unavailable(f"cannot delete conntrack entries of {what}: {error}") from error
    _, kind, _, _, _ = _HEADER.unpack_from(answer)
    code = -struct.unpack_from("=i", answer, _HEADER.size)[0] if kind == NLMSG_ERROR else 0
    if code in (errno.EINVAL, errno.EOPNOTSUPP):
        raise FilterUnsupported(f"the kernel refused a filtered delete: {errno.errorcode[code]}")
    if code not in (0, errno.ENOENT):
        message_text = f"cannot delete conntrack entries of {what}: {errno.errorcode[code]}"
        raise Unavailable(message_text)
