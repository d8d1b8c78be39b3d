"""The README's testing example runs as written."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_echo_example(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    server, test = blocks[0], blocks[1]
    # The server block without its last line, which listens on a real port.
    namespace = {}
    exec(server.replace('listener = ngi.net.listener(("127.0.0.1", 8000), Echo)', ""),
         namespace)
    exec(test, namespace)
    namespace["test_echo"](capsys)
