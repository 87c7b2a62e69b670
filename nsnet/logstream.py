"""Docker's log stream: the frames of a container's output, and reading the kept output.

For a container without a TTY, ``GET /containers/{id}/logs`` answers with Docker's multiplexed
stream: each frame is an 8-byte header (stream type, 3 zero bytes, big-endian uint32 payload
length) and the payload; stream 1 is stdout, 2 stderr, 3 an error of the daemon itself. With a
TTY the answer is the raw bytes. The daemon frames (``frame``), the CLI reads the frames back
(``Demultiplexer``); ``tail_offset`` finds where the last lines of a log file begin.

Only the standard library is imported here: the CLI imports this module.
"""

import struct
from typing import BinaryIO

STDOUT = 1
STDERR = 2
SYSTEM_ERROR = 3
STREAMS = (0, STDOUT, STDERR, SYSTEM_ERROR)  # 0 (stdin) is written by attach only

HEADER = struct.Struct(">B3xL")
MAX_FRAME_PAYLOAD = 0xFFFFFFFF
TAIL_BLOCK_SIZE = 64 * 1024

MULTIPLEXED_MEDIA_TYPE = "application/vnd.docker.multiplexed-stream"
RAW_MEDIA_TYPE = "application/vnd.docker.raw-stream"


class FrameError(ValueError):
    """Bytes that are not Docker's multiplexed stream."""


def frame(stream: int, payload: bytes) -> bytes:
    """``payload`` as one frame of ``stream`` (STDOUT, STDERR or SYSTEM_ERROR)."""
    if stream not in STREAMS:
        raise ValueError(f"cannot frame stream {stream}: not one of {STREAMS}")
    if len(payload) > MAX_FRAME_PAYLOAD:
        raise ValueError(f"cannot frame {len(payload)} bytes: at most {MAX_FRAME_PAYLOAD}")
    return HEADER.pack(stream, len(payload)) + payload


class Demultiplexer:
    """Reads frames back from a multiplexed stream fed in pieces of any size."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The complete frames in what has arrived so far, as (stream, payload) pairs."""
        self._pending += data
        frames = []
        while len(self._pending) >= HEADER.size:
            stream, length = HEADER.unpack_from(self._pending)
            if stream not in STREAMS:
                raise FrameError(
                    f"unrecognized input header: {stream} (not a multiplexed log stream)"
                )
            end = HEADER.size + length
            if len(self._pending) < end:
                break
            frames.append((stream, bytes(self._pending[HEADER.size : end])))
            del self._pending[:end]
        return frames

    def close(self) -> None:
        """Check that the stream ended at a frame boundary."""
        if self._pending:
            raise FrameError(
                f"the log stream ended inside a frame ({len(self._pending)} bytes left over)"
            )


def parse_tail(text: str | None) -> int | None:
    """The ``tail`` query parameter: a number of lines, or None for all of them.

    Docker reads "all", an empty value and negative numbers as everything.
    """
    value = (text or "").strip()
    if value in ("", "all"):
        return None
    try:
        lines = int(value)
    except ValueError:
        raise ValueError(f"'{text}' is neither a number of lines nor \"all\"") from None
    return None if lines < 0 else lines


def tail_offset(file: BinaryIO, lines: int | None) -> int:
    """Where the last ``lines`` lines of ``file`` begin (None: all of it, offset 0).

    A last line without its newline counts as a line. Reads backwards in blocks, so a long log
    costs only the blocks the lines are in.
    """
    if lines is None:
        return 0
    end = file.seek(0, 2)
    if lines == 0 or end == 0:
        return end

    # The file's last byte ends the last line whether or not it is a newline.
    file.seek(end - 1)
    newlines_wanted = lines + 1 if file.read(1) == b"\n" else lines
    position = end
    while position > 0:
        start = max(0, position - TAIL_BLOCK_SIZE)
        file.seek(start)
        block = file.read(position - start)
        index = len(block)
        while (index := block.rfind(b"\n", 0, index)) >= 0:
            newlines_wanted -= 1
            if newlines_wanted == 0:
                return start + index + 1
        position = start
    return 0
