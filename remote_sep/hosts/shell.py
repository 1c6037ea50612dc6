"""Shell text for remote scripts: quoting paths (with a remote-side '~') and `export` lines.

Every remote script that needs a path or the profile's environment builds it here, so the
quoting rules live in one place.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping


def remote_path_expr(path: str) -> str:
    """A shell word for a remote path: '~' and '~/x' become "$HOME"/x, the rest is quoted."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


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
