"""Deleting conntrack entries by a filter, in one request the kernel carries out itself.

A ctnetlink delete request that holds a CTA_FILTER makes the kernel delete every entry of the
caller's namespace that matches it: one sendmsg, nothing copied to us, about 0.2 ms here. The
older way, a filtered dump and then a delete per entry, took about 10 ms per dump even with
nothing to find, because a dump walks the whole conntrack table (shared by every namespace on
the machine) through many callbacks. Kernels that predate filters on deletion answer EINVAL
or EOPNOTSUPP; ``FilterUnsupported`` tells the caller to fall back to dumping.

A channel acts in the network namespace of the thread that opened it.
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


class ConntrackChannel:
    """A ctnetlink socket of the namespace it was opened in, kept open.

    Kept rather than opened per call: closing a netfilter netlink socket soon after an
    nftables transaction waits several milliseconds in the kernel, which made every removal
    that unpublished a port cost that much more.
    """

    def __init__(self) -> None:
        try:
            self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            self._socket.bind((0, 0))
        except OSError as error:
            raise Unavailable(f"cannot open a conntrack socket: {error.strerror}") from error
        self._sequence = 0

    def close(self) -> None:
        """Close the socket."""
        self._socket.close()

    def delete_matching(self, direction: str, **fields: str | int) -> None:
        """Delete the IPv4 entries whose ``direction`` tuple (ORIGINAL or REPLY) has ``fields``.

        ``fields`` are NFCTAttrTuple's: ``saddr``, ``daddr``, ``proto``, ``sport``, ``dport``;
        all must match. An entry gone meanwhile, or none matching, is no error.
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
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        header = message["header"]
        header["type"] = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE
        header["flags"] = NLM_F_REQUEST | NLM_F_ACK
        header["sequence_number"] = self._sequence
        message.encode()

        what = f"the {direction} direction's {fields}"
        try:
            self._socket.send(message.data)
            code = self._answer(self._sequence)
        except OSError as error:
            raise Unavailable(f"cannot delete conntrack entries of {what}: {error}") from error
        reason = errno.errorcode.get(code, str(code))
        if code in (errno.EINVAL, errno.EOPNOTSUPP):
            raise FilterUnsupported(f"the kernel refused a filtered delete: {reason}")
        if code not in (0, errno.ENOENT):
            raise Unavailable(f"cannot delete conntrack entries of {what}: {reason}")

    def _answer(self, sequence: int) -> int:
        """The errno of the acknowledgement of request ``sequence`` (0: done)."""
        while True:
            answer = self._socket.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(answer):
                length, kind, _, answered, _ = _HEADER.unpack_from(answer, offset)
                if length < _HEADER.size:
                    break
                if answered == sequence and kind == NLMSG_ERROR:
                    return -struct.unpack_from("=i", answer, offset + _HEADER.size)[0]
                offset += (length + 3) & ~3
