"""Example servers and clients for ngi, each with a test in tests/test_examples.py.

Run any server with ``ngi serve`` from the repository root, for example::

    ngi serve examples.echo:server --bind 127.0.0.1:8000
"""
