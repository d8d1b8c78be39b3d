"""Tests for ngi.adapters: Base, Lines and Sized, over ngi.testing.

(What the framing adapters do over every implementation, switching
handlers, closing, limits and nesting among it, is in
test_framed_adapters.py.)
"""
from __future__ import annotations

import array
import struct

import pytest
from hypothesis import given, settings, strategies as st

import ngi.testing
from ngi.adapters import Base, Lines, Sized

from helpers import InputOnly, Recorder

NULL = b"\xff\xff\xff\xff"


def adapted(adapter_class):
    """An adapter on a testing connection; returns (adapter, app, peer)."""
    connection = ngi.testing.Connection()
    peer = Recorder()
    connection.peer.set_handler(peer)
    adapter = adapter_class(connection)
    app = Recorder()
    adapter.set_handler(app)
    return adapter, app, peer


def sent(peer):
    return b"".join(peer.inputs)


def sized(*records):
    return b"".join(NULL if r is None else struct.pack(">I", len(r)) + r
                    for r in records)


def chunks(data, sizes):
    """Split ``data`` into pieces of the given sizes, cycling through them."""
    pos, out, i = 0, [], 0
    while pos < len(data):
        size = sizes[i % len(sizes)] if sizes else len(data)
        out.append(data[pos:pos + size])
        pos += size
        i += 1
    return out


# Passing through ----------------------------------------------------------

@pytest.mark.parametrize("adapter_class", [Base, Lines, Sized])
def test_connection_attributes_pass_through(adapter_class):
    adapter, app, peer = adapted(adapter_class)
    assert adapter.connection is not None
    assert bool(adapter) is True
    assert adapter.peer_address == adapter.connection.peer_address
    has_control = hasattr(adapter.connection, "control")
    assert hasattr(adapter, "control") == has_control
    adapter.close()
    assert bool(adapter) is False
    assert not adapter.connection
    assert peer.closes  # the peer saw the close
    assert app.closes == []  # our own close is not reported back


def test_control_passes_through_for_server_connections():
    connections = []

    def server(connection):
        adapter = Lines(connection)
        adapter.set_handler(Recorder())
        connections.append(adapter)

    address = ("test_adapters", "control")
    listener = ngi.testing.listener(address, server)
    try:
        client = Recorder()

        class Client:
            def connected(self, connection):
                connection.set_handler(client)

            def failed_connect(self, reason):
                raise AssertionError(reason)

        ngi.testing.connect(address, Client())
        [adapter] = connections
        assert adapter.control is listener
    finally:
        listener.close()


def test_base_passes_input_and_output_through():
    adapter, app, peer = adapted(Base)
    adapter.connection.test_input(b"abc\n")
    adapter.connection.test_input(b"\x00\x01")
    assert app.inputs == [b"abc\n", b"\x00\x01"]
    assert app.input_connections == [adapter, adapter]
    adapter.write(b"xyz")
    adapter.writelines([b"1", bytearray(b"2"), memoryview(b"3")])
    assert sent(peer) == b"xyz123"


def test_lines_output_is_unframed():
    adapter, app, peer = adapted(Lines)
    adapter.write(b"no newline added")
    adapter.writelines(iter([b"a\n", b"b\n"]))
    assert sent(peer) == b"no newline addeda\nb\n"


def test_handle_close_is_forwarded_with_the_adapter():
    for adapter_class in Base, Lines, Sized:
        connection = ngi.testing.Connection()
        adapter = adapter_class(connection)
        seen = []

        class Handler(InputOnly):
            def handle_close(self, connection, reason):
                seen.append((connection, reason))

        adapter.set_handler(Handler())
        connection.test_close("gone")
        assert seen == [(adapter, "gone")]


def test_optional_methods_exist_only_when_the_handler_has_them():
    adapter = Lines(ngi.testing.Connection())
    adapter.set_handler(InputOnly())
    assert not hasattr(adapter, "handle_close")
    assert not hasattr(adapter, "handle_exception")
    adapter.connection.test_close("gone")  # no error without handle_close
    assert not adapter

    adapter = Lines(ngi.testing.Connection())
    adapter.set_handler(Recorder())
    assert hasattr(adapter, "handle_close")
    assert hasattr(adapter, "handle_exception")


def test_handle_exception_is_forwarded_for_writelines_errors():
    adapter, app, peer = adapted(Base)

    def failing():
        yield b"ok"
        raise ValueError("boom")

    adapter.writelines(failing())
    assert sent(peer) == b"ok"
    [exception] = app.exceptions
    assert isinstance(exception, ValueError)
    assert str(exception) == "boom"


def test_switching_handlers_with_sized():
    adapter = Sized(ngi.testing.Connection())
    second = Recorder()

    class First(Recorder):
        def handle_input(self, connection, data):
            super().handle_input(connection, data)
            connection.set_handler(second)

    first = First()
    adapter.set_handler(first)
    adapter.connection.test_input(sized(b"one", b"two", b"three"))
    assert first.inputs == [b"one"]
    assert second.inputs == [b"two", b"three"]


# Bad input ----------------------------------------------------------------

@pytest.mark.parametrize("adapter_class", [Base, Lines, Sized])
def test_writing_str_is_a_type_error(adapter_class):
    adapter, app, peer = adapted(adapter_class)
    with pytest.raises(TypeError, match="bytes-like"):
        adapter.write("text")
    assert sent(peer) == b""


@pytest.mark.parametrize("adapter_class", [Base, Lines, Sized])
@pytest.mark.parametrize("data", [b"abc", "abc", bytearray(b"abc"),
                                  memoryview(b"abc")])
def test_writelines_of_a_single_chunk_is_a_type_error(adapter_class, data):
    adapter, app, peer = adapted(adapter_class)
    with pytest.raises(TypeError, match="iterable of bytes-like"):
        adapter.writelines(data)
    assert sent(peer) == b""


@pytest.mark.parametrize("data", [123, object(), ["a"]])
def test_sized_write_of_a_non_bytes_is_a_type_error(data):
    adapter, app, peer = adapted(Sized)
    with pytest.raises(TypeError, match="bytes-like object or None, not"):
        adapter.write(data)
    assert sent(peer) == b""  # not even a prefix went out


def test_sized_writelines_reports_a_bad_item_through_handle_exception():
    adapter, app, peer = adapted(Sized)
    adapter.writelines([b"good", "bad"])
    assert sent(peer) == sized(b"good")
    [exception] = app.exceptions
    assert isinstance(exception, TypeError)
    assert "bytes-like" in str(exception)


# Lines --------------------------------------------------------------------

def test_lines_splits_input_into_lines():
    adapter, app, peer = adapted(Lines)
    adapter.connection.test_input(b"Hello world!")
    assert app.inputs == []
    adapter.connection.test_input(b"\n")
    assert app.inputs == [b"Hello world!"]
    adapter.connection.test_input(b"Hello\nWorld!\nHow are you")
    assert app.inputs == [b"Hello world!", b"Hello", b"World!"]
    adapter.connection.test_input(b"?\n\n")
    assert app.inputs[3:] == [b"How are you?", b""]
    assert all(c is adapter for c in app.input_connections)


def test_lines_byte_by_byte():
    adapter, app, peer = adapted(Lines)
    for byte in b"ab\n\ncd\r\nlast":
        adapter.connection.test_input(bytes([byte]))
    assert app.inputs == [b"ab", b"", b"cd\r"]


def test_lines_drops_a_partial_line_at_close():
    adapter, app, peer = adapted(Lines)
    adapter.connection.test_input(b"whole\npart")
    adapter.connection.test_close("bye")
    assert app.inputs == [b"whole"]
    assert app.closes == ["bye"]


def test_lines_long_line_in_many_chunks():
    adapter, app, peer = adapted(Lines)
    line = bytes(range(256)).replace(b"\n", b"") * 400
    for piece in chunks(line + b"\n", [7, 1, 300]):
        adapter.connection.test_input(piece)
    assert app.inputs == [line]


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.binary().map(lambda b: b.replace(b"\n", b""))),
       sizes=st.lists(st.integers(1, 20)))
def test_lines_any_split_gives_the_same_lines(lines, sizes):
    adapter, app, peer = adapted(Lines)
    for piece in chunks(b"".join(line + b"\n" for line in lines), sizes):
        adapter.connection.test_input(piece)
    assert app.inputs == lines


# Sized --------------------------------------------------------------------

def test_sized_frames_output():
    adapter, app, peer = adapted(Sized)
    message = b"Hello\nWorld!\nHow are you?"
    adapter.write(message)
    assert sent(peer) == b"\x00\x00\x00\x19" + message
    adapter.write(b"")
    adapter.write(bytearray(b"ba"))
    adapter.write(memoryview(b"mv"))
    assert sent(peer) == sized(message, b"", b"ba", b"mv")


def test_sized_prefix_counts_bytes_not_items():
    adapter, app, peer = adapted(Sized)
    numbers = array.array("i", [1, 2, 3])
    adapter.write(memoryview(numbers))
    assert sent(peer) == sized(numbers.tobytes())


def test_sized_null_marker():
    adapter, app, peer = adapted(Sized)
    adapter.write(None)
    assert sent(peer) == NULL
    adapter.connection.test_input(NULL)
    adapter.connection.test_input(NULL + sized(b"x") + NULL)
    assert app.inputs == [b"x"]


def test_sized_receives_records_split_anywhere():
    adapter, app, peer = adapted(Sized)
    message1 = b"Hello\nWorld!\nHow are you?"
    message2 = b"This is message 2"
    adapter.connection.test_input(struct.pack(">I", len(message1)))
    adapter.connection.test_input(message1[:10])
    assert app.inputs == []
    adapter.connection.test_input(message1[10:] + struct.pack(">I", 17))
    assert app.inputs == [message1]
    adapter.connection.test_input(message2)
    assert app.inputs == [message1, message2]


def test_sized_byte_by_byte():
    adapter, app, peer = adapted(Sized)
    for byte in sized(b"ab", None, b"", b"cde", None):
        adapter.connection.test_input(bytes([byte]))
    assert app.inputs == [b"ab", b"", b"cde"]


def test_sized_empty_record_at_the_end_of_a_chunk():
    adapter, app, peer = adapted(Sized)
    adapter.connection.test_input(b"\x00\x00\x00\x00")
    assert app.inputs == [b""]


def test_sized_round_trip_between_two_adapters():
    connection = ngi.testing.Connection()
    left, right = Sized(connection), Sized(connection.peer)
    left_app, right_app = Recorder(), Recorder()
    left.set_handler(left_app)
    right.set_handler(right_app)
    left.write(b"ping")
    left.write(None)
    left.writelines(iter([b"a", None, b"", bytearray(b"bc")]))
    right.write(b"pong")
    assert right_app.inputs == [b"ping", b"a", b"", b"bc"]
    assert left_app.inputs == [b"pong"]


def test_sized_writelines_stays_lazy():
    """The adapter hands on an iterator and pulls nothing itself."""
    pulled = []

    def source():
        for item in [b"one", None, b"three"]:
            pulled.append(item)
            yield item

    class Lazy:
        """Records the iterable given to writelines without consuming it."""

        def writelines(self, iterable):
            self.iterable = iterable

    lazy = Lazy()
    Sized(lazy).writelines(source())
    assert pulled == []
    framed = lazy.iterable
    assert next(framed) == b"\x00\x00\x00\x03"
    assert pulled == [b"one"]
    assert next(framed) == b"one"
    assert next(framed) == NULL
    assert pulled == [b"one", None]
    assert b"".join(framed) == sized(b"three")
    assert pulled == [b"one", None, b"three"]


def test_sized_large_record_in_small_chunks():
    adapter, app, peer = adapted(Sized)
    record = bytes(range(256)) * 1000
    for piece in chunks(sized(record, b"tail"), [4093]):
        adapter.connection.test_input(piece)
    assert app.inputs == [record, b"tail"]


records = st.lists(st.one_of(st.none(), st.binary(max_size=50)))


@settings(max_examples=200, deadline=None)
@given(records=records, sizes=st.lists(st.integers(1, 20)))
def test_sized_any_split_gives_the_same_records(records, sizes):
    adapter, app, peer = adapted(Sized)
    for piece in chunks(sized(*records), sizes):
        adapter.connection.test_input(piece)
    assert app.inputs == [r for r in records if r is not None]


@settings(max_examples=100, deadline=None)
@given(records=records)
def test_sized_write_then_read_back(records):
    adapter, app, peer = adapted(Sized)
    for record in records:
        adapter.write(record)
    assert sent(peer) == sized(*records)


# -- input limits ---------------------------------------------------------------

from ngi.adapters import LineTooLong, MessageTooLarge  # noqa: E402


def test_lines_over_max_line_close_with_line_too_long():
    connection = ngi.testing.Connection()
    connection.peer.set_handler(Recorder())
    adapter = Lines(connection, max_line=10)
    app = Recorder()
    adapter.set_handler(app)
    connection.test_input(b"short\n" + b"x" * 11 + b"\nnever\n")
    assert app.inputs == [b"short"]
    assert not adapter
    [reason] = app.closes
    assert isinstance(reason, LineTooLong) and isinstance(reason, ValueError)
    assert "max_line=10" in str(reason)


def test_lines_partial_line_over_the_limit_is_refused_before_its_end():
    adapter, app, peer = adapted(lambda c: Lines(c, max_line=8))
    adapter.connection.test_input(b"12345")
    assert app.closes == [] and adapter.buffered == 5
    adapter.connection.test_input(b"6789")  # 9 bytes, no newline yet
    assert isinstance(app.closes[0], LineTooLong)
    assert adapter.buffered == 0  # nothing kept beyond the limit


def test_lines_exactly_max_line_is_fine():
    adapter, app, peer = adapted(lambda c: Lines(c, max_line=4))
    for piece in (b"ab", b"cd\n", b"abcd\n"):
        adapter.connection.test_input(piece)
    assert app.inputs == [b"abcd", b"abcd"] and app.closes == []


def test_sized_prefix_over_max_size_is_refused_without_buffering():
    adapter, app, peer = adapted(lambda c: Sized(c, max_size=100))
    adapter.connection.test_input(sized(b"ok") + struct.pack(">I", 0xFFFFFFF0))
    assert app.inputs == [b"ok"]
    [reason] = app.closes
    assert isinstance(reason, MessageTooLarge) and isinstance(reason, ValueError)
    assert "max_size=100" in str(reason)
    assert not adapter and adapter.buffered == 0


def test_sized_record_of_exactly_max_size_is_fine():
    adapter, app, peer = adapted(lambda c: Sized(c, max_size=3))
    adapter.connection.test_input(sized(b"abc"))
    assert app.inputs == [b"abc"] and app.closes == []


def test_default_limits():
    connection = ngi.testing.Connection()
    assert Lines(connection).max_line == 1 << 20
    assert Sized(connection).max_size == 16 << 20


@pytest.mark.parametrize("adapter_class, name", [(Lines, "max_line"), (Sized, "max_size")])
def test_bad_limits_are_value_errors(adapter_class, name):
    with pytest.raises(ValueError, match=name):
        adapter_class(ngi.testing.Connection(), **{name: -1})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=20),
       st.sampled_from([Lines, Sized]))
def test_arbitrary_input_raises_nothing_but_documented_reasons(chunks_, adapter_class):
    limit = {"max_line": 16} if adapter_class is Lines else {"max_size": 16}
    connection = ngi.testing.Connection()
    connection.peer.set_handler(Recorder())
    adapter = adapter_class(connection, **limit)
    app = Recorder()
    adapter.set_handler(app)
    for chunk in chunks_:
        if not connection:
            break
        connection.test_input(chunk)  # must not raise
    for record in app.inputs:
        assert len(record) <= 16
    for reason in app.closes:
        assert isinstance(reason, (LineTooLong, MessageTooLarge))


# -- flow control passes through --------------------------------------------------

class FakeFlowConnection:
    """Just enough of a connection to see what the adapter passes on."""

    def __init__(self):
        self.calls = []
        self.write_buffer_size = 123
        self.reading = True

    def set_handler(self, handler):
        self.handler = handler

    def set_write_limits(self, high=None, low=None):
        self.calls.append(("limits", high, low))

    def pause_reading(self):
        self.calls.append("pause")
        self.reading = False

    def resume_reading(self):
        self.calls.append("resume")
        self.reading = True

    def abort(self):
        self.calls.append("abort")


@pytest.mark.parametrize("adapter_class", [Base, Lines, Sized])
def test_flow_control_passes_through(adapter_class):
    fake = FakeFlowConnection()
    adapter = adapter_class(fake)
    assert adapter.write_buffer_size == 123
    adapter.set_write_limits(high=10)
    adapter.pause_reading()
    assert adapter.reading is False
    adapter.resume_reading()
    assert adapter.reading is True
    adapter.abort()
    assert fake.calls == [("limits", 10, None), "pause", "resume", "abort"]


def test_pause_and_resume_writing_reach_the_handler_with_the_adapter():
    fake = FakeFlowConnection()
    adapter = Lines(fake)
    seen = []

    class App(Recorder):
        def handle_pause_writing(self, connection):
            seen.append(("pause", connection))

        def handle_resume_writing(self, connection):
            seen.append(("resume", connection))

    adapter.set_handler(App())
    fake.handler.handle_pause_writing(fake)
    fake.handler.handle_resume_writing(fake)
    assert seen == [("pause", adapter), ("resume", adapter)]
    adapter.set_handler(Recorder())
    assert getattr(fake.handler, "handle_pause_writing", None) is None
