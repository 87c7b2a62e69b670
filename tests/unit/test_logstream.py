"""nsnet.logstream: Docker's log frames both ways, the tail parameter, the start of the tail."""

import io

import pytest

from nsnet.logstream import (
    STDERR,
    STDOUT,
    TAIL_BLOCK_SIZE,
    Demultiplexer,
    FrameError,
    frame,
    parse_tail,
    tail_offset,
)


def test_a_frame_is_type_three_zero_bytes_and_a_big_endian_length() -> None:
    assert frame(STDOUT, b"hi\n") == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
    assert frame(STDERR, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"
    assert frame(STDOUT, b"x" * 0x10203)[:8] == b"\x01\x00\x00\x00\x00\x01\x02\x03"
    with pytest.raises(ValueError, match="cannot frame stream 7"):
        frame(7, b"")


def test_frames_are_read_back_from_pieces_of_any_size() -> None:
    stream = frame(STDOUT, b"out 1\n") + frame(STDERR, b"err\n") + frame(STDOUT, b"out 2")
    for size in (1, 3, 8, 9, len(stream)):
        demultiplexer = Demultiplexer()
        found = []
        for start in range(0, len(stream), size):
            found += demultiplexer.feed(stream[start : start + size])
        demultiplexer.close()

        assert found == [(STDOUT, b"out 1\n"), (STDERR, b"err\n"), (STDOUT, b"out 2")], size


def test_raw_output_is_no_multiplexed_stream() -> None:
    """What the docker CLI met before the fix: 'o' (111) where a stream type belongs."""
    with pytest.raises(FrameError, match="unrecognized input header: 111"):
        Demultiplexer().feed(b"output of web\n")


def test_a_stream_that_stops_inside_a_frame_is_an_error() -> None:
    demultiplexer = Demultiplexer()
    assert demultiplexer.feed(frame(STDOUT, b"whole")[:-1]) == []

    with pytest.raises(FrameError, match="ended inside a frame"):
        demultiplexer.close()


@pytest.mark.parametrize(
    ("text", "lines"),
    [(None, None), ("", None), ("all", None), ("-1", None), ("0", 0), ("5", 5), (" 7 ", 7)],
)
def test_tail_is_a_number_of_lines_or_all(text: str | None, lines: int | None) -> None:
    assert parse_tail(text) == lines


@pytest.mark.parametrize("text", ["ten", "1.5", "ALL", "+-1"])
def test_tail_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="neither a number of lines nor"):
        parse_tail(text)


@pytest.mark.parametrize(
    ("content", "lines", "shown"),
    [
        (b"a\nb\nc\n", 1, b"c\n"),
        (b"a\nb\nc\n", 2, b"b\nc\n"),
        (b"a\nb\nc\n", 3, b"a\nb\nc\n"),
        (b"a\nb\nc\n", 9, b"a\nb\nc\n"),
        (b"a\nb\nc", 1, b"c"),
        (b"a\nb\nc", 2, b"b\nc"),
        (b"a\n\n\n", 2, b"\n\n"),
        (b"a\nb\n", 0, b""),
        (b"a\nb\n", None, b"a\nb\n"),
        (b"", 3, b""),
        (b"one line, no newline", 1, b"one line, no newline"),
    ],
)
def test_tail_offset_finds_the_start_of_the_last_lines(
    content: bytes, lines: int | None, shown: bytes
) -> None:
    file = io.BytesIO(content)

    assert content[tail_offset(file, lines) :] == shown


def test_tail_offset_reads_across_blocks() -> None:
    long_line = b"x" * (TAIL_BLOCK_SIZE + 10) + b"\n"
    content = b"first\n" + long_line + b"short\n" + long_line

    for lines, shown in ((1, long_line), (2, b"short\n" + long_line), (4, content)):
        assert content[tail_offset(io.BytesIO(content), lines) :] == shown, lines
