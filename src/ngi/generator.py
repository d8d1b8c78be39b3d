"""Write a connection handler as a generator function.

Event handlers split a conversation into callbacks; a generator keeps it in
one place, with ordinary local variables and control flow::

    @ngi.generator.handler
    def greet(connection):
        name = yield                  # the next input
        connection.write(b'Hello ' + name)

The decorated function takes the connection and is run up to its first
``yield`` as soon as the connection is handed over.  After that:

- each input is sent in: it is the value of the ``yield`` expression;
- a close from outside throws ``GeneratorExit(reason)`` in (so ``finally``
  blocks run, and the reason is ``exc.args[0]``);
- an error reported for ``writelines`` data is thrown in at the ``yield``;
  a generator that catches it and yields again keeps the connection open;
- when the generator returns, the connection is closed, also when it
  returns before its first ``yield``.

An exception escaping the generator goes to the implementation, which logs
it and closes the connection.  Values yielded by the generator are ignored.

The result of ``handler`` is an ``IServer`` (call it with a connection), an
``IClientConnectHandler`` (``connected`` / ``failed_connect``, which raises
`ngi.interfaces.ConnectionFailed`), and, used on a method, binds the
instance as the first argument.  With ``connection_adapter``, the
connection is wrapped in it (for example `ngi.adapters.Lines`) before the
generator sees it.
"""
from __future__ import annotations

import functools
import types
from collections.abc import Generator
from typing import Any, Callable, overload

from ngi.interfaces import ConnectionFailed

__all__ = ["handler", "Handler", "ConnectionHandler"]


@overload
def handler(func: Callable[..., Any],
            connection_adapter: Callable[[Any], Any] | None = None
            ) -> Handler: ...


@overload
def handler(func: None = None,
            connection_adapter: Callable[[Any], Any] | None = None
            ) -> Callable[[Callable[..., Any]], Handler]: ...


def handler(func: Callable[..., Any] | None = None,
            connection_adapter: Callable[[Any], Any] | None = None
            ) -> Handler | Callable[[Callable[..., Any]], Handler]:
    """Make a handler from generator function ``func(connection)``.

    Without ``func``, return a decorator, so that both ``@handler`` and
    ``@handler(connection_adapter=ngi.adapters.Lines)`` work.
    """
    if func is None:
        return lambda func: Handler(func, connection_adapter)
    return Handler(func, connection_adapter)


class Handler:
    """A generator function turned into a server and a connect handler."""

    def __init__(self, func: Callable[..., Any],
                 connection_adapter: Callable[[Any], Any] | None) -> None:
        self.func = func
        self.connection_adapter = connection_adapter
        functools.update_wrapper(self, func)

    def __call__(self, connection: Any) -> ConnectionHandler | None:
        """Start a conversation on ``connection`` (the ``IServer`` call)."""
        if self.connection_adapter is not None:
            connection = self.connection_adapter(connection)
        gen = self.func(connection)
        if not isinstance(gen, Generator):
            raise TypeError(
                f"{getattr(self.func, '__qualname__', self.func)!r} must be a "
                f"generator function, but it returned {type(gen).__name__}")
        try:
            next(gen)
        except StopIteration:
            # Done before needing any input: nothing will ever read from
            # the connection, so don't leave it open.
            if connection:
                connection.close()
            return None
        conversation = ConnectionHandler(gen, connection)
        connection.set_handler(conversation)
        return conversation

    connected = __call__

    def failed_connect(self, reason: Any) -> None:
        raise ConnectionFailed(reason)

    def __get__(self, instance: Any, owner: type | None = None) -> Handler:
        # Used on a method: bind the instance, keep the handler behaviour.
        if instance is None:
            return self
        return Handler(types.MethodType(self.func, instance),
                       self.connection_adapter)

    def __repr__(self) -> str:
        return f"<ngi.generator.Handler {self.func!r}>"


class ConnectionHandler:
    """The ``IConnectionHandler`` that drives one running generator."""

    def __init__(self, gen: Generator[Any, bytes, Any],
                 connection: Any) -> None:
        self.gen = gen
        self.connection = connection

    def handle_input(self, connection: Any, data: bytes) -> None:
        try:
            self.gen.send(data)
        except StopIteration:
            self._finished()

    def handle_close(self, connection: Any, reason: Any) -> None:
        try:
            self.gen.throw(GeneratorExit(reason))
        except (GeneratorExit, StopIteration):
            return
        raise RuntimeError("generator handler ignored GeneratorExit")

    def handle_exception(self, connection: Any,
                         exception: BaseException) -> None:
        try:
            self.gen.throw(exception)
        except StopIteration:
            self._finished()

    def _finished(self) -> None:
        if self.connection:
            self.connection.close()
