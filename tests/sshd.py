"""A real OpenSSH server on 127.0.0.1 for the tests (never any other address).

Each server gets its own host key, user key, known_hosts, port and log in a temp dir, and
is torn down by pid. ``.ci/run`` installs openssh-server; nothing here installs anything.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = shutil.which("sshd", path="/usr/sbin:/usr/local/sbin:" + os.environ.get("PATH", ""))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    return path


@dataclass
class SshServer:
    root: Path
    port: int
    user: str
    host_key: Path
    user_key: Path
    known_hosts: Path
    log: Path
    process: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)
    log_level: str = "INFO"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def known_hosts_line(self) -> str:
        public = (self.host_key.with_suffix(".pub")).read_text().split()
        return f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n"

    def session_pids(self) -> list[int]:
        """pids of the per-connection sshd children (killing one drops that link)."""
        out = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def drop_links(self) -> int:
        """Kill every per-connection sshd child: the links die, the server stays up."""
        pids = self.session_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def stop(self) -> None:
        if self.process is None:
            return
        for pid in self.session_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def start(self) -> SshServer:
        os.makedirs("/run/sshd", exist_ok=True)
        config = self.root / "sshd_config"
        # A login shell that runs `pyenv init` (this machine's ~/.bashrc does) waits up to 60 s
        # on pyenv's rehash lock, which a killed session can leave behind: bound that wait.
        env = {"PYENV_REHASH_TIMEOUT": "1", **self.env}
        env_lines = "SetEnv " + " ".join(f"{k}={v}" for k, v in env.items()) + "\n"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"PidFile none\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n"
            f"KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}\n"
            f"PermitRootLogin prohibit-password\nAllowUsers {self.user}\n"
            f"Subsystem sftp internal-sftp\nLogLevel {self.log_level}\n"
            f"MaxStartups 100\nMaxSessions 50\n"
            f"{env_lines}"
        )
        log = open(self.log, "ab")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            [SSHD, "-f", str(config), "-D", "-e"], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening within 10 s")


def start_sshd(
    root: Path, *, env: dict[str, str] | None = None, log_level: str = "INFO"
) -> SshServer:
    """Start sshd on a free loopback port with fresh keys under ``root``."""
    if SSHD is None:
        raise RuntimeError("sshd not found: run .ci/run (it installs openssh-server)")
    root.mkdir(parents=True, exist_ok=True)
    host_key = keygen(root / "host_key")
    user_key = keygen(root / "user_key")
    (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
    server = SshServer(
        root=root,
        port=free_port(),
        user=getpass.getuser(),
        host_key=host_key,
        user_key=user_key,
        known_hosts=root / "known_hosts",
        log=root / "sshd.log",
        env=env or {},
        log_level=log_level,
    )
    server.known_hosts.write_text(server.known_hosts_line())
    return server.start()
