"""The uv command lines bootstrap runs on the host (text only; every value quoted).

uv itself comes from the host's pip into `P/tools/uv` (`pip install --target`, a static
binary wheel), installed on a temporary name and renamed, so a tools dir is never half made.
Indexes, on purpose:
- the torch step names the CUDA index alone (`--index-url`, uv's default first-index
  strategy): torch and what it needs come from there, as with pip today;
- every later step leaves that index out and resolves with `--index-strategy
  unsafe-best-match` over the host's own indexes (PyPI by default), as pip does. The CUDA
  index can therefore never serve sam_audio's or the payload's dependencies (no dependency
  confusion), and the torch index never locks a name such as numpy to its old copies.
The host's pip configuration reaches uv as UV_* variables fed on stdin (`ENV_FROM_STDIN`),
so a credential in an index URL is never on a command line.
"""

from __future__ import annotations

from remote_sep.hosts.shell import quote, quote_argv, remote_path_expr

UV_REQUIREMENT = "uv>=0.9,<0.14"
# Index variables a user's shell may set; the torch step drops them to keep its index alone.
INDEX_VARS = ("UV_INDEX", "UV_EXTRA_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX")
# Reads NAME=value lines from stdin and exports each (values are never re-evaluated).
ENV_FROM_STDIN = 'while IFS= read -r kv; do [ -n "$kv" ] && export "$kv"; done\n'


def tools_dir(base: str) -> str:
    return base.rstrip("/") + "/tools"


def uv_path(base: str) -> str:
    return tools_dir(base) + "/uv/bin/uv"


def facts_lines(base_var: str = "BASE") -> str:
    """Shell text for the facts script: `uv=uv 0.13.9 (…)` when P/tools/uv runs."""
    return (f'U="${base_var}/tools/uv/bin/uv"\n'
            'if [ -x "$U" ] && v=$("$U" --version 2>/dev/null); then echo "uv=$v"; fi\n')


def install_uv_script(python: str, base: str) -> str:
    """`python -m pip install --target P/tools/uv.part uv`, then the rename (atomic)."""
    tools = remote_path_expr(tools_dir(base))
    pip = quote_argv([python, "-m", "pip", "install", "--disable-pip-version-check",
                      "--no-input", "--only-binary", ":all:", "--target"])
    return (f"set -e\nT={tools}\nmkdir -p \"$T\"\nrm -rf \"$T/uv.part\"\n"
            "trap 'rm -rf \"$T/uv.part\"' EXIT\n"
            f"{pip} \"$T/uv.part\" {quote(UV_REQUIREMENT)}\n"
            "\"$T/uv.part/bin/uv\" --version >/dev/null\n"
            "rm -rf \"$T/uv.old\"\n[ ! -e \"$T/uv\" ] || mv \"$T/uv\" \"$T/uv.old\"\n"
            "mv \"$T/uv.part\" \"$T/uv\"\nrm -rf \"$T/uv.old\"\n\"$T/uv/bin/uv\" --version\n")


def _prefix(base: str, *, drop_indexes: bool) -> str:
    # The cache sits beside the venv (same filesystem: uv hardlinks instead of copying) unless
    # the host sets its own; uv must use the host's Python, never download one.
    cache = remote_path_expr(tools_dir(base) + "/uv-cache")
    unset = f"unset {' '.join(INDEX_VARS)}\n" if drop_indexes else ""
    return (unset + ENV_FROM_STDIN
            + f'[ -n "${{UV_CACHE_DIR:-}}" ] || UV_CACHE_DIR={cache}\n'
            + "export UV_CACHE_DIR\n"
            + "export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1\n")


def venv_script(base: str, python: str, venv: str) -> str:
    """`uv venv --clear`: a half-made venv is rebuilt; it has no pip (uv installs into it)."""
    return _prefix(base, drop_indexes=False) + quote_argv(
        [uv_path(base), "venv", "--clear", "--python", python, venv])


def install_script(base: str, venv_py: str, packages: list[str], *, extra: list[str],
                   index_url: str | None = None, best_match: bool = False) -> str:
    """`uv pip install` into the venv. `index_url`: that index alone (the torch step);
    `best_match`: pip's resolution over every configured index (the later steps)."""
    args = [uv_path(base), "pip", "install", "--python", venv_py, "--compile-bytecode"]
    if index_url:
        args += ["--index-url", index_url]
    if best_match:
        args += ["--index-strategy", "unsafe-best-match"]
    return _prefix(base, drop_indexes=bool(index_url)) + quote_argv([*args, *extra, *packages])


def stdin_env(env: dict[str, str]) -> bytes:
    """The NAME=value lines `ENV_FROM_STDIN` reads (a value cannot hold a newline)."""
    lines = []
    for name, value in sorted(env.items()):
        if not name.replace("_", "A").isalnum() or "\n" in value or "\r" in value:
            raise ValueError(f"environment value for {name} cannot be sent")
        lines.append(f"{name}={value}\n")
    return "".join(lines).encode()
