"""The core's framer, which both implementations' adapters use: every
split of the input gives the same records, limits hold before anything is
kept, and bad arguments say what is wrong.

(The adapters' own tests, in test_adapters.py, run over it too.)
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngi._core import Framer


def feed_in_pieces(framer, stream, cuts):
    """Feed ``stream`` cut at ``cuts``; every record, in order."""
    records = []
    bounds = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    for start, end in zip(bounds, bounds[1:]):
        records += framer.feed(stream[start:end])
    return records


delimiters = st.sampled_from([b"\n", b"\r\n", b"\r\n\r\n", b"--"])
streams = st.binary(max_size=300).map(  # few symbols: many near-delimiters
    lambda raw: bytes(b"ab\r\n-"[byte % 5] for byte in raw))
cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=30)


@settings(max_examples=300)
@given(delimiters, streams, cuts)
def test_every_split_gives_the_records_that_split_gives(delimiter, stream, cuts):
    framer = Framer.delimited(delimiter, 1 << 20)
    *expected, rest = stream.split(delimiter)
    assert feed_in_pieces(framer, stream, cuts) == expected
    assert framer.buffered == len(rest) and framer.error is None


@settings(max_examples=300)
@given(delimiters, streams, cuts, st.integers(min_value=0, max_value=20))
def test_a_delimited_limit_breaks_at_the_same_record_whatever_the_split(
        delimiter, stream, cuts, limit):
    framer = Framer.delimited(delimiter, limit, OverflowError, "too long")
    *complete, rest = stream.split(delimiter)
    expected = []
    for record in complete:
        if len(record) > limit:
            break
        expected.append(record)
    broken = (len(expected) < len(complete)
              or len(rest) > limit + len(delimiter) - 1)
    assert feed_in_pieces(framer, stream, cuts) == expected
    assert isinstance(framer.error, OverflowError) == broken
    if broken:
        assert str(framer.error) == "too long" and framer.buffered == 0
        assert framer.feed(delimiter) == []  # broken for good
    else:
        assert framer.buffered == len(rest) <= limit + len(delimiter) - 1


def sized_stream(records):
    out = b""
    for record in records:
        if record is None:
            out += b"\xff\xff\xff\xff"  # the null marker: skipped
        else:
            out += len(record).to_bytes(4, "big") + record
    return out


records = st.lists(st.one_of(st.none(), st.binary(max_size=40)), max_size=20)


@settings(max_examples=300)
@given(records, cuts)
def test_every_split_of_sized_records_gives_them_back(records, cuts):
    framer = Framer.sized(1 << 20)
    stream = sized_stream(records)
    assert feed_in_pieces(framer, stream, cuts) == [r for r in records
                                                    if r is not None]
    assert framer.buffered == 0 and framer.error is None


@given(records, cuts, st.integers(min_value=0, max_value=40))
def test_a_sized_limit_refuses_the_length_before_the_body_is_kept(
        records, cuts, limit):
    framer = Framer.sized(limit, OverflowError)
    stream = sized_stream(records)
    expected = []
    for record in records:
        if record is None:
            continue
        if len(record) > limit:
            break
        expected.append(record)
    broken = len(expected) < len([r for r in records if r is not None])
    assert feed_in_pieces(framer, stream, cuts) == expected
    assert isinstance(framer.error, OverflowError) == broken
    if broken:
        assert f"max_size={limit} bytes" in str(framer.error)
        assert framer.buffered == 0


def test_a_huge_announced_record_is_refused_at_once():
    framer = Framer.sized(100)
    assert framer.feed(b"\x7f\xff\xff\xff" + b"x" * 10) == []
    assert isinstance(framer.error, ValueError)
    assert "2147483647-byte record is over max_size=100" in str(framer.error)
    assert framer.buffered == 0


def test_only_an_incomplete_record_is_kept():
    framer = Framer.delimited(b"\r\n", 100)
    assert framer.feed(b"one\r\ntwo\r") == [b"one"]
    assert framer.buffered == 4
    assert framer.feed(b"\nthree") == [b"two"]
    assert framer.buffered == 5
    assert framer.feed(b"\r\n") == [b"three"] and framer.buffered == 0


@pytest.mark.parametrize("args, error, message", [
    ((b"", 10), ValueError, "the delimiter must be 1 to 64 bytes long"),
    ((b"x" * 65, 10), ValueError, "the delimiter must be 1 to 64 bytes long"),
    (("\n", 10), TypeError, "the delimiter must be bytes, got str"),
    ((b"\n", -1), ValueError, "max_size must be a non-negative int"),
    ((b"\n", 1.5), ValueError, "max_size must be a non-negative int"),
])
def test_bad_arguments_say_what_is_wrong(args, error, message):
    with pytest.raises(error, match=message):
        Framer.delimited(*args)


def test_feed_takes_bytes_like_data_only():
    framer = Framer.sized(10)
    assert framer.feed(bytearray(b"\x00\x00\x00\x01!")) == [b"!"]
    assert framer.feed(memoryview(b"\x00\x00\x00\x00")) == [b""]
    with pytest.raises(TypeError, match="feed\\(\\) expects bytes-like data"):
        framer.feed("text")


# expect(): a body of known length after a delimited head ---------------------

def heads_and_bodies(framer, stream, cuts):
    """Cut ``stream`` of ``b"<n>\\n"`` heads each followed by an n-byte
    body, fed in pieces; a head's record makes the framer expect its body."""
    records = []
    bounds = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    for start, end in zip(bounds, bounds[1:]):
        piece, pos = stream[start:end], 0
        while True:
            record, pos = framer.cut(piece, pos)
            if record is None:
                break
            records.append(record)
            if len(records) % 2:  # a head: its body comes next
                framer.expect(int(record))
    return records


bodies = st.lists(st.binary(max_size=40).map(  # with delimiters inside
    lambda raw: bytes(b"a\n"[byte % 2] for byte in raw)), max_size=8)


@settings(max_examples=300)
@given(bodies, cuts)
def test_expected_bodies_are_cut_whole_delimiters_and_all(body_list, cuts):
    stream = b"".join(b"%d\n" % len(body) + body for body in body_list)
    framer = Framer.delimited(b"\n", 100)
    expected = [r for body in body_list for r in (b"%d" % len(body), body)]
    assert heads_and_bodies(framer, stream, cuts) == expected
    assert framer.buffered == 0


def test_expect_says_what_is_wrong():
    with pytest.raises(ValueError, match="sized records carry their own"):
        Framer.sized(10).expect(3)
    framer = Framer.delimited(b"\n", 100)
    with pytest.raises(ValueError, match="size"):
        framer.expect(-1)
    assert framer.feed(b"head\nbod") == [b"head"]
    with pytest.raises(ValueError, match=r"expect\(2\) with 3 bytes already kept"):
        framer.expect(2)
    framer.expect(5)  # the kept bytes begin the body
    assert framer.feed(b"y!\nnext\n") == [b"body!", b"", b"next"]
    with pytest.raises(TypeError, match="cut\\(\\) expects bytes"):
        framer.cut(bytearray(b"x\n"))


# Redis commands (RESP 2) -------------------------------------------------------

def resp(*arguments):
    return b"*%d\r\n" % len(arguments) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in arguments)


commands = st.lists(st.one_of(
    st.lists(st.binary(max_size=20).map(  # arguments holding CRLF and '*'
        lambda raw: bytes(b"a\r\n*$ 1"[byte % 7] for byte in raw)),
        min_size=1, max_size=4).map(lambda args: ("array", args)),
    st.lists(st.sampled_from([b"PING", b"GET", b"k", b"12"]),
             min_size=1, max_size=3).map(lambda args: ("inline", args)),
), max_size=10)


@settings(max_examples=300)
@given(commands, cuts)
def test_every_split_of_redis_commands_gives_each_once(command_list, cuts):
    stream = b"".join(resp(*args) if kind == "array"
                      else b" ".join(args) + b"\r\n"
                      for kind, args in command_list)
    expected = [args for kind, args in command_list]
    framer = Framer.resp(100)
    assert feed_in_pieces(framer, stream, cuts) == expected
    assert framer.buffered == 0 and framer.error is None


def test_redis_empty_commands_are_skipped_and_inline_words_split():
    framer = Framer.resp(100)
    assert framer.feed(b"\r\n*0\r\n  PING \t hi\r\nQUIT\n") == [
        [b"PING", b"hi"], [b"QUIT"]]


@pytest.mark.parametrize("stream, message", [
    (b"*1\r\n:5\r\n", "expected '$', got ':'"),
    (b"*x\r\n", "invalid multibulk length"),
    (b"*2000000\r\n", "invalid multibulk length"),
    (b"*1\r\n$-1\r\n", "invalid bulk length"),
    (b"*1\r\n$101\r\n", "invalid bulk length"),  # over max_size: no body kept
    (b"PING" * 20_000, "too big inline request"),
])
def test_what_is_not_resp_breaks_the_framer_in_redis_words(stream, message):
    framer = Framer.resp(100, KeyError)
    assert framer.feed(stream) == []
    assert isinstance(framer.error, KeyError)
    assert framer.error.args == (message,)
    assert framer.buffered == 0
    assert framer.feed(resp(b"PING")) == []  # broken for good


def test_an_incomplete_redis_command_is_kept_from_its_start():
    framer = Framer.resp(1000)
    first = framer.feed(resp(b"SET", b"k", b"v")[:-3])
    assert first == [] and framer.buffered == len(resp(b"SET", b"k", b"v")) - 3
    # One arrival ends it, carries two whole commands and starts a fourth.
    rest = b"v\r\n" + resp(b"GET", b"k") + b"PING\r\n" + resp(b"GET", b"long")[:9]
    assert framer.feed(rest) == [[b"SET", b"k", b"v"], [b"GET", b"k"], [b"PING"]]
    assert framer.buffered == 9
    assert framer.feed(resp(b"GET", b"long")[9:]) == [[b"GET", b"long"]]
    assert framer.buffered == 0


@pytest.mark.parametrize("pieces", [1, 3])
def test_an_incomplete_redis_command_is_bounded(pieces):
    """Many small arguments of a command never ended: refused once what is
    kept passes max_size and 64 KiB, whether it came at once or not."""
    stream = b"*100000\r\n" + b"$1\r\na\r\n" * 12_000  # 84,009 bytes, no end
    framer = Framer.resp(10)
    size = -(-len(stream) // pieces)
    for start in range(0, len(stream), size):
        assert framer.feed(stream[start:start + size]) == []
    assert str(framer.error).startswith("too big request")
    assert framer.buffered == 0
