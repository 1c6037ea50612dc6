"""Shell text for remote scripts: the one place that quotes.

Every remote command is built from these: `quote` for one word, `quote_argv` for an argv
list, `remote_path_expr` for a remote path (a leading '~' becomes "$HOME"), `export_lines`
for the profile's environment. No other module imports shlex (tests/test_layering.py), so a
word cannot reach a remote shell unquoted by accident.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping


def quote(word: object) -> str:
    """One shell word, whatever it holds (spaces, quotes, `$(...)`)."""
    return shlex.quote(str(word))


def quote_argv(argv: Iterable[object]) -> str:
    """A command line whose every element is one quoted word."""
    return " ".join(quote(a) for a in argv)


def split_words(text: str) -> list[str]:
    """Words of a shell-like value (ssh_config's UserKnownHostsFile lists, for one)."""
    return shlex.split(text)


def remote_path_expr(path: str) -> str:
    """A shell word for a remote path: '~' and '~/x' become "$HOME"/x, the rest is quoted."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + quote(path[2:])
    return quote(path)


def export_lines(path_prepend: Iterable[str], env: Mapping[str, str]) -> list[str]:
    """`export` lines for non-secret variables and PATH additions (values may start '~/')."""
    lines = []
    dirs = [remote_path_expr(d) for d in path_prepend]
    if dirs:
        lines.append("export PATH=" + ":".join(dirs) + ':"$PATH"')
    for name, value in env.items():
        if not name.isidentifier():
            raise ValueError(f"bad environment variable name {name!r}")
        lines.append(f"export {name}={remote_path_expr(value)}")
    return lines
