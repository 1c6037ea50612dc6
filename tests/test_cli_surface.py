"""The command line as a user meets it: --version, and flags shown as flags in every --help."""

from __future__ import annotations

import re
import subprocess
import sys

import remote_sep

MAIN = "from remote_sep.cli.main import main; main()"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60, env={"COLUMNS": "100",
                                                                     "PATH": "/usr/bin:/bin"})


def test_version():
    run = cli("--version")
    assert run.returncode == 0 and run.stdout.strip() == f"remote-sep {remote_sep.__version__}"


def test_every_help_shows_flags_as_flags():
    from remote_sep.cli.main import build_command

    root = build_command()
    names = [[]] + [[name] for name in root.commands] + [
        [name, sub] for name, cmd in root.commands.items()
        for sub in getattr(cmd, "commands", {})]
    flags_seen = 0
    for path in names:
        run = cli(*path, "--help")
        assert run.returncode == 0, (path, run.stderr)
        assert "<bool>" not in run.stdout, (path, run.stdout)
        flags_seen += len(re.findall(r"--(?:force|json|yes|dry-run|help)\b", run.stdout))
    assert flags_seen > len(names)  # the flags are there, just without a value type


def test_a_flag_takes_no_value():
    run = cli("separate", "song.wav", "--desc", "x", "--host", "local", "--force", "true")
    assert run.returncode == 2 and "unexpected extra argument" in run.stderr
