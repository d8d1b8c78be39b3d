"""A chat server: every line a client sends goes to every other client.

    ngi serve examples.chat:server --bind 127.0.0.1:8000   # one worker only
    telnet 127.0.0.1 8000

``/nick NAME`` changes your name.  Flow control: a client that reads more
slowly than the room talks makes its connection's write buffer pass the high
mark; ngi then calls ``handle_pause_writing`` and the room stops sending to
it (counting what it misses) until ``handle_resume_writing``, when it is
told how many lines it missed.  So one slow reader costs the server at most
about a high mark of memory, and never slows the others down.

All members live in one process and their handlers run on one loop thread,
so the room needs no lock.  (With ``serve --workers N`` there would be one
room per worker.)
"""
MAX_LINE = 64 * 1024  # a longer line is a broken or hostile client


class Room:
    """The server: a callable that makes each new connection a member."""

    def __init__(self):
        self.members = set()
        self.joined = 0

    def __call__(self, connection):
        self.joined += 1
        member = Member(self, connection, b"guest%d" % self.joined)
        self.members.add(member)
        self.broadcast(member, b"* %s joined" % member.name)

    def broadcast(self, sender, line):
        for member in list(self.members):
            if member is not sender:
                member.send(line)

    def leave(self, member, how=b"left"):
        if member in self.members:
            self.members.discard(member)
            self.broadcast(member, b"* %s %s" % (member.name, how))


class Member:
    """The handler of one client's connection."""

    def __init__(self, room, connection, name):
        self.room = room
        self.connection = connection
        self.name = name
        self.pending = b""    # the start of a line still being received
        self.paused = False   # the client is not keeping up
        self.missed = 0       # lines dropped while paused
        connection.set_handler(self)

    def handle_input(self, connection, data):
        *lines, self.pending = (self.pending + data).split(b"\n")
        if len(self.pending) > MAX_LINE:
            connection.write(b"* line too long, goodbye\n")
            connection.close()
            self.room.leave(self, b"was disconnected")
            return
        for line in lines:
            line = line.rstrip(b"\r")
            if line.startswith(b"/nick "):
                old, self.name = self.name, line[6:].strip() or self.name
                self.room.broadcast(None, b"* %s is now %s" % (old, self.name))
            elif line:
                self.room.broadcast(self, b"%s: %s" % (self.name, line))

    def send(self, line):
        if self.paused:
            self.missed += 1
        elif self.connection:
            self.connection.write(line + b"\n")

    def handle_pause_writing(self, connection):
        self.paused = True

    def handle_resume_writing(self, connection):
        self.paused = False
        if self.missed:
            missed, self.missed = self.missed, 0
            self.send(b"* you missed %d lines" % missed)

    def handle_close(self, connection, reason):
        self.room.leave(self)


server = Room()
