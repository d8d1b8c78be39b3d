# Listeners, connectors and UDP endpoints.  Included by _core.pyx;
# declarations in _endpoints.pxd.


cdef int serve_connection(object server, Connection c) except -1:
    """Hand a server's connection to its callable, on the connection's
    loop: at accept, or once its TLS handshake has completed.  One that
    raises closes only its connection; one that sets no handler leaves
    its client hanging, so that is logged."""
    try:
        server(c)
    except Exception as e:
        c.lose(None)
        c.loop.report(f"server {server!r}", e, _server_log)
        return 0
    if c.handler is None and c.app_open():
        _server_log.warning(_rules.NO_HANDLER, server, c)
    return 0


cdef int tell_connected(object handler, Connection c) except -1:
    """A client's connection is made (and its TLS handshake done): its
    connect handler's `connected`, which closes it if it raises."""
    try:
        handler.connected(c)
    except Exception as e:
        c.lose(None)
        c.loop.report("connected", e, _client_log)
    return 0


@cython.final
cdef class Listener(Watcher):
    """A listening socket: NGI's `IListener` over the core."""

    def __repr__(self):
        return f"<ngi listener {self.address!r}>"

    cdef int on_event(self, uint32_t events) except -1:
        return self.accept_some()

    cdef int perform(self, int op, object arg) except -1:
        if op == OP_FORGET:
            self.forget(<Connection>arg)
        elif op == OP_CLOSE_LISTENER:
            self.stop_accepting(arg)
        elif op == OP_STOP_ALL:
            self.stop_all()
        elif op == OP_RESUME_ACCEPT:
            if self.accepting and self.fd >= 0:
                self.loop.set_interest(self, NGI_IN)
        else:
            Watcher.perform(self, op, arg)
        return 0

    cdef int accept_some(self) except -1:
        cdef int fd, i, err
        cdef Loop loop = self.loop
        cdef Connection c
        cdef sockaddr_storage ss
        cdef socklen_t length
        for i in range(ACCEPTS_PER_EVENT):
            # close() stops accepts at once, from any thread, before the
            # loop has taken its operation.
            if not self.accepting or atomic_load_int(&self.close_asked):
                return 0
            length = sizeof(ss)
            fd = ngi_accept(self.fd, <sockaddr *>&ss, &length)
            if fd < 0:
                err = errno
                if err == EAGAIN:
                    return 0
                if err == EINTR or err == ECONNABORTED or err == EPROTO:
                    continue
                if err in (EMFILE, ENFILE, ENOBUFS, ENOMEM):
                    # Out of descriptors or memory: the pending connection
                    # stays readable, so rest instead of spinning, and say
                    # so once per episode, not once per try.
                    if not self.starved:
                        self.starved = True
                        _server_log.warning(
                            "%r: accept failed (%s); retrying every %ss",
                            self, strerror(err).decode(), ACCEPT_PAUSE)
                    loop.set_interest(self, 0)
                    loop.start_timer(loop.new_timer(
                        ACCEPT_PAUSE, OP_RESUME_ACCEPT, self, None))
                    return 0
                loop.report(f"accept on {self!r}", os_error(err), _server_log)
                return 0
            if self.starved:
                self.starved = False
                _server_log.warning("%r: accepting again", self)
            if _server_log.isEnabledFor(DEBUG):
                _server_log.debug("%r accepted a connection from %r", self,
                                  sockaddr_to_py(<sockaddr *>&ss, length))
            if self.nodelay:
                set_nodelay(fd)
            if self.adopt is not None:
                try:
                    self.adopt(self, fd)
                except Exception as e:
                    c_close(fd)
                    loop.report(f"adopting a connection of {self!r}", e,
                                _server_log)
                continue
            c = new_connection(loop, fd, False)  # TCP_NODELAY set above
            c.control = self
            keep_peer(c, <sockaddr *>&ss, length)
            loop.count(1)
            loop.set_interest(c, CONNECTION_EVENTS)
            self.conns.add(c)
            if self.ssl_context is None:
                serve_connection(self.server, c)
            else:  # served once its handshake has completed
                begin_tls(c, self.ssl_context, True, None, THEN_SERVE,
                          self.server, self.handshake_timeout,
                          self.shutdown_timeout)
        return 0

    def track(self, Connection conn):
        """Count a connection accepted for this listener on another loop
        (from `adopt`, on this listener's loop thread)."""
        conn.control = self
        self.conns.add(conn)

    cdef int forget(self, Connection conn) except -1:
        self.conns.discard(conn)
        if not self.conns and self.drained is not None:
            handler, self.drained = self.drained, None
            self.loop.count(-1)
            try:
                handler(self)
            except Exception as e:
                self.loop.report(f"listener close handler {handler!r}", e,
                                 _server_log)
        return 0

    def connections(self):
        """The open connections this listener accepted and served (a TLS
        one once its handshake is done)."""
        cdef Connection c
        return [c for c in list(self.conns)
                if c and (c.tls is None or c.tls.phase == TLS_OPEN)]

    def close(self, handler=None):
        """Close now (connections get 'stopped'), or drain, then `handler`.

        A close without a handler after a draining one stops the
        connections still open; the drain handler then runs as they go.
        The first close removes a Unix socket's file before it returns.
        """
        if atomic_exchange_int(&self.close_asked, 1):
            if handler is None:
                self.loop.here_or_soon(OP_STOP_ALL, self, None)
            return
        _unixpath.release(self.unix_path)
        self.loop.here_or_soon(OP_CLOSE_LISTENER, self, handler)

    cdef int stop_accepting(self, object handler) except -1:
        cdef Connection c
        self.accepting = False
        self.loop.detach(self)
        if handler is None:
            return self.stop_all()
        if self.conns:
            self.drained = handler
            self.loop.count(1)  # the loop waits for the drain
            for c in list(self.conns):  # time to finish: handle_drain
                if c.loop is self.loop:
                    tell_draining(c)
                else:  # a thready connection, on its own loop
                    c.loop.submit(OP_CALL, _tell_draining, (c,))
            return 0
        try:
            handler(self)
        except Exception as e:
            self.loop.report(f"listener close handler {handler!r}", e,
                             _server_log)
        return 0

    cdef int stop_all(self) except -1:
        cdef Connection c
        for c in list(self.conns):
            if c.loop is self.loop:
                c.lose("stopped")
            else:
                c.loop.submit(OP_STOP, c, None)
        return 0


cdef int tell_draining(Connection c) except -1:
    """Its listener is draining: call the handler's optional
    ``handle_drain(connection)``, so that an idle connection can close now."""
    if c.handler is None or not c.app_open():
        return 0
    on_drain = getattr(c.handler, "handle_drain", None)
    if on_drain is not None:
        try:
            on_drain(c)
        except Exception as e:
            c.handler_failed("handle_drain", e)
    return 0


def _tell_draining(Connection c):
    tell_draining(c)


@cython.final
cdef class Connector(Watcher):
    """A socket whose connect is under way; becomes a `Connection`."""

    cdef int on_event(self, uint32_t events) except -1:
        cdef int err = 0
        cdef socklen_t length = sizeof(err)
        if getsockopt(self.fd, SOL_SOCKET, SO_ERROR, &err, &length) < 0:
            err = errno
        return self.on_error(events, err)

    cdef int on_error(self, uint32_t events, int err) except -1:
        """The connect's outcome: `err` is 0 when it succeeded."""
        cdef int fd = self.fd
        cdef socklen_t length
        cdef Loop loop = self.loop
        cdef Connection c
        cdef sockaddr_storage ss
        handler, self.handler = self.handler, None
        if err:
            loop.detach(self)
            try:
                handler.failed_connect(os_error(err))
            except Exception as e:
                loop.report("failed_connect", e, _client_log)
            return 0
        # Hand the descriptor over to a Connection: still one active thing.
        c = new_connection(loop, fd, self.nodelay)
        length = sizeof(ss)
        if getpeername(fd, <sockaddr *>&ss, &length) == 0:
            keep_peer(c, <sockaddr *>&ss, length)
        loop.hand_over(self, c, CONNECTION_EVENTS)
        if self.ssl_context is not None:  # connected once the handshake is done
            return begin_tls(c, self.ssl_context, False, self.server_hostname,
                             THEN_CONNECT, handler, self.handshake_timeout,
                             self.shutdown_timeout)
        return tell_connected(handler, c)


@cython.final
cdef class UDPListener(Watcher):
    """A bound datagram socket calling `handler(address, data)`."""

    def __repr__(self):
        return f"<ngi udp listener {self.address!r}>"

    cdef int on_event(self, uint32_t events) except -1:
        cdef sockaddr_storage ss
        cdef socklen_t length
        cdef ssize_t n
        cdef int i
        cdef Loop loop = self.loop
        cdef Py_ssize_t size = min(self.buffer_size, loop.bufsize)
        for i in range(DATAGRAMS_PER_EVENT):
            length = sizeof(ss)
            n = recvfrom(self.fd, loop.buf, size, 0, <sockaddr *>&ss, &length)
            if n < 0:
                if errno == EINTR:
                    continue
                return 0
            try:
                self.handler(sockaddr_to_py(<sockaddr *>&ss, length),
                             PyBytes_FromStringAndSize(loop.buf, n))
            except Exception as e:
                loop.report(f"udp handler {self.handler!r}", e, _udp_log)
            if self.fd < 0:
                return 0
        return 0

    cdef int perform(self, int op, object arg) except -1:
        if op == OP_CLOSE_UDP:
            self.loop.detach(self)
        else:
            Watcher.perform(self, op, arg)
        return 0

    def udp(self, address, data):
        """Send a datagram from this listener's own address (a reply).

        ``udp(address, data)`` of the implementation sends from a socket of
        its own, so a peer that checks where replies come from needs this.
        """
        if self.sender is None:
            raise ValueError("this UDP listener has no socket to send from")
        if atomic_load_int(&self.close_asked):
            raise ValueError("udp() on a closed UDP listener")
        self.sender.sendto(_rules.as_bytes(data, "udp()"), address)

    def close(self):
        """Stop receiving; the first close removes a Unix socket's file."""
        if atomic_exchange_int(&self.close_asked, 1):
            return
        if self.sender is not None:
            self.sender.close()
        _unixpath.release(self.unix_path)
        self.loop.here_or_soon(OP_CLOSE_UDP, self, None)
