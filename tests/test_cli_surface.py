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


def _doctor(home, *args: str, **env: str) -> tuple[int, dict]:
    import json

    run = subprocess.run([sys.executable, "-c", MAIN, "doctor", "--json", *args],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(home), **env})
    return run.returncode, json.loads(run.stdout)


def _rows(body: dict) -> dict[str, dict]:
    checks = body["result"]["checks"] if body["ok"] else body["error"]["checks"]
    return {row["check"]: row for row in checks}


def test_doctor_reports_each_part_with_its_fix(tmp_path):
    home = tmp_path / "home"
    ssh = home / ".ssh"
    ssh.mkdir(parents=True)
    code, body = _doctor(home)  # nothing at all: no agent, no key files -> keys fail
    rows = _rows(body)
    assert code == 4 and rows["ssh keys"]["status"] == "fail" and rows["ssh keys"]["fix"]
    assert rows["known_hosts"]["status"] == "warn" and "hosts trust" in rows["known_hosts"]["fix"]
    assert rows["hf token"]["status"] == "warn" and rows["python"]["status"] == "ok"

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / "id_ed25519")],
                   check=True)
    (ssh / "known_hosts").write_text("[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF\n")
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            import time
            time.sleep(0.05)
        subprocess.run(["ssh-add", "-q", str(ssh / "id_ed25519")], check=True,
                       env={"SSH_AUTH_SOCK": str(sock), "PATH": "/usr/bin:/bin"},
                       capture_output=True)
        token = home / ".cache" / "huggingface"
        token.mkdir(parents=True)
        (token / "token").write_text("hf_doctorsecret")
        code, body = _doctor(home, SSH_AUTH_SOCK=str(sock))
    finally:
        agent.kill()
        agent.wait()
    rows = _rows(body)
    assert code == 0, body
    assert rows["ssh keys"]["status"] == "ok" and "SHA256:" in rows["ssh keys"]["detail"]
    assert "(1 keys)" in rows["known_hosts"]["detail"]
    assert "hf auth login" in rows["hf token"]["detail"]
    assert "hf_doctorsecret" not in str(body)

    hosts = home / "hosts.yaml"
    hosts.write_text("hosts:\n  gpu1:\n    host: h\n    prot: 22\n")
    code, body = _doctor(home, "--hosts", str(hosts))
    rows = _rows(body)
    assert code == 4 and rows["hosts.yaml"]["status"] == "fail"
    assert "hosts.yaml:4" in rows["hosts.yaml"]["detail"]


def test_shell_completion_offers_hosts_and_job_ids(tmp_path):
    home = tmp_path / "home"
    (home / ".config" / "remote-sep").mkdir(parents=True)
    (home / ".config" / "remote-sep" / "hosts.yaml").write_text(
        "hosts:\n  gpu1:\n    host: 203.0.113.4\n  gpu2:\n    host: 203.0.113.5\n")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "config").write_text("Host labbox\n  HostName 198.51.100.1\n")
    jobs = tmp_path / "state" / "jobs"
    jobs.mkdir(parents=True)
    (jobs / "gpu1__20261201-aaaa.json").write_text("{}")

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        run = subprocess.run(
            [sys.executable, "-c", MAIN], capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin", "HOME": str(home), "REMOTE_SEP_STATE_DIR":
                 str(tmp_path / "state"), "_REMOTE_SEP_COMPLETE": "complete_bash",
                 "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)})
        assert run.returncode == 0, run.stderr
        return run.stdout.split()

    assert complete("remote-sep separate song.wav --host g") == ["gpu1", "gpu2"]
    assert complete("remote-sep hosts check l") == ["labbox", "local"]
    assert complete("remote-sep batch --hosts gpu1,g") == ["gpu1,gpu2"]
    assert complete("remote-sep attach 2026") == ["20261201-aaaa"]
    assert complete("remote-sep clean ") == ["gpu1", "gpu2", "labbox", "local"]


def test_every_settings_field_is_an_option_of_separate_and_batch():
    """Every field the payload's Settings has is reachable from both commands (and is a
    hosts.yaml field): a new Settings field without its setting_table row fails here."""
    from dataclasses import fields

    from typer.main import get_command

    from remote_payload.manifest import Settings
    from remote_sep.cli.main import app
    from remote_sep.profiles.fields import FIELDS
    from remote_sep.setting_table import NOT_OPTIONS, ROW_OF_FIELD

    commands = get_command(app).commands
    options = {name: {opt for param in commands[name].params for opt in param.opts}
               for name in ("separate", "batch", "split")}
    for spec in fields(Settings):
        if spec.name in NOT_OPTIONS:
            continue
        row = ROW_OF_FIELD.get(spec.name)
        assert row is not None, f"Settings.{spec.name} has no setting_table row"
        for command, opts in options.items():
            assert row.option in opts, f"{command} lacks {row.option} ({spec.name})"
        assert row.name in FIELDS, f"hosts.yaml lacks {row.name} ({spec.name})"
    assert "--worker-idle-timeout" in options["batch"] and "worker_idle_timeout" in FIELDS
    assert "--quality" in options["separate"] and "--quality" in options["batch"]
    run = cli("separate", "--help")
    for option in ("--bit-depth", "--sample-rate", "--solver", "--overlap", "--quality"):
        assert option in run.stdout, option
