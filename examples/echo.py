"""An echo server: every byte received goes back to the sender.

    ngi serve examples.echo:server --bind 127.0.0.1:8000
"""


class Echo:
    """One per connection; the class itself is the server (an ``IServer``
    is any callable taking the new connection)."""

    def __init__(self, connection):
        connection.set_handler(self)

    def handle_input(self, connection, data):
        connection.write(data)

    def handle_close(self, connection, reason):
        pass


server = Echo
