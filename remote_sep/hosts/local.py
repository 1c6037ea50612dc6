"""LocalHost: the Host interface on this machine (the built-in host `local`), no SSH.

Commands go through `bash -c` with the same shell text SSHHost sends, so quoting, env
export and detaching behave the same; files are copied to a temp name and renamed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from remote_sep.errors import TransferError
from remote_sep.hosts.base import (
    Progress,
    RemoteCommandError,
    RunResult,
    check_result,
    detached_script,
    full_command,
    sha256_file,
)
from remote_sep.hosts.landing import Landing
from remote_sep.hosts.profile import LOCAL_HOST, HostProfile
from remote_sep.hosts.space import disk_full

CHUNK = 1 << 20
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


class LocalHost:
    def __init__(self, profile: HostProfile | None = None):
        self.profile = profile or HostProfile(name=LOCAL_HOST)
        self.name = self.profile.name
        self.round_trips = 0  # no network: stays 0

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, argv: Sequence[str] | str, *, stdin: bytes | None = None,
            timeout: float | None = None, check: bool = True,
            env: Mapping[str, str] | None = None) -> RunResult:
        """Run through `bash -c` (argv elements shell-quoted). `env`: non-secret values."""
        try:
            proc = subprocess.run(["bash", "-c", full_command(argv, env)], input=stdin or b"",
                                  capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            result = RunResult(-1, exc.stdout or b"", exc.stderr or b"")
            raise RemoteCommandError(f"command timed out after {timeout:g} s on {self.name}",
                                     result) from None
        result = RunResult(proc.returncode, proc.stdout, proc.stderr)
        return check_result(self.name, argv, result) if check else result

    def start_detached(self, argv: Sequence[str], *, cwd: str, log: str, pid_file: str,
                       env: Mapping[str, str] | None = None) -> int:
        """Start argv in its own session, reparented away from us (no zombie); -> pid."""
        script = detached_script(argv, cwd=self.expand(cwd), log=self.expand(log),
                                 pid_file=self.expand(pid_file), env=env)
        return int(self.run(script).text.strip().splitlines()[-1])

    def stream(self, command: str) -> _ProcessStream:
        """Start a shell command and read its stdout as it comes (like SSHHost.stream)."""
        proc = subprocess.Popen(["bash", "-c", command], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return _ProcessStream(proc)

    def expand(self, path: str) -> str:
        return os.path.expanduser(path) if path == "~" or path.startswith("~/") else path

    def _p(self, path: str) -> Path:
        return Path(self.expand(path))

    def _copy(self, src: Path, dst: Path, progress: Progress | None) -> tuple[str, Path]:
        """Copy to a sibling temp name, fsync, rename; returns the sha256 of what was copied."""
        total = src.stat().st_size
        tmp = dst.with_name(f".{dst.name}.part-{secrets.token_hex(4)}")
        digest = hashlib.sha256()
        done = 0
        try:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                while block := fin.read(CHUNK):
                    fout.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
                fout.flush()
                os.fsync(fout.fileno())
                if os.fstat(fout.fileno()).st_size != done:  # never rename a short copy
                    raise OSError(errno.EIO, f"{tmp}: short write")
            shutil.copymode(src, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest.hexdigest(), tmp

    def put_file(self, local: Path, remote: str, *, progress: Progress | None = None,
                 sha256: str | None = None) -> None:
        landing = self.send_file(local, remote, progress=progress, sha256=sha256)
        os.replace(landing.tmp, landing.final)  # _copy checked what it wrote

    def send_file(self, local: Path, remote: str, *, progress: Progress | None = None,
                  sha256: str | None = None) -> Landing:
        """Like SSHHost.send_file: the temp copy made (size and, with `sha256`, content
        checked), not yet renamed."""
        local, target = Path(local), self._p(remote)
        what = f"the upload of {local.name}"
        try:
            copied, tmp = self._copy(local, target, progress)
        except OSError as exc:
            if exc.errno in _NO_SPACE:  # like SSHHost: the host named, what did not fit
                raise disk_full(self.name, what, need=local.stat().st_size,
                                free=_free(target.parent), where=str(target.parent)) from None
            raise TransferError(f"upload to {remote} on {self.name}: {exc.strerror}") from None
        if sha256 and copied != sha256.lower():
            tmp.unlink(missing_ok=True)
            raise TransferError(f"{what}: the file changed since it was hashed; it was not "
                                "kept", hint="run the command again")
        return Landing(self.name, str(tmp), str(target), tmp.stat().st_size, copied, what)

    def get_file(self, remote: str, local: Path, *, expected_sha256: str | None = None,
                 progress: Progress | None = None) -> str:
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            got, tmp = self._copy(self._p(remote), local, progress)
        except OSError as exc:
            raise TransferError(f"download {remote} on {self.name}: {exc.strerror}") from None
        if expected_sha256 and got != expected_sha256.lower():
            tmp.unlink(missing_ok=True)
            raise TransferError(
                f"{remote} from {self.name} arrived with sha256 {got}, expected "
                f"{expected_sha256}; the file was not written",
                hint="run the command again to retry the pull")
        os.replace(tmp, local)
        return got

    def write_bytes(self, remote: str, data: bytes, *, mode: int = 0o644) -> None:
        target = self._p(remote)
        tmp = target.with_name(f".{target.name}.part-{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, mode)  # exact mode, umask aside; set before any data
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in _NO_SPACE:
                raise disk_full(self.name, f"writing {target}", need=len(data),
                                free=_free(target.parent), where=str(target.parent)) from None
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def read_bytes(self, remote: str, offset: int = 0, limit: int | None = None) -> bytes:
        try:
            with open(self._p(remote), "rb") as src:
                src.seek(offset)
                return src.read() if limit is None else src.read(limit)
        except OSError as exc:
            raise TransferError(f"read {remote} on {self.name}: {exc.strerror}") from None

    def size(self, remote: str) -> int | None:
        try:
            return self._p(remote).stat().st_size
        except FileNotFoundError:
            return None

    def sha256(self, remote: str) -> str | None:
        path = self._p(remote)
        return sha256_file(path) if path.is_file() else None

    def mkdirs(self, remote: str, mode: int = 0o755) -> None:
        os.makedirs(self._p(remote), mode=mode, exist_ok=True)


def _free(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


class _ProcessStream:
    def __init__(self, proc: subprocess.Popen):
        self._proc = proc

    def read(self) -> bytes:
        assert self._proc.stdout is not None
        try:
            return os.read(self._proc.stdout.fileno(), 1 << 16)
        except (OSError, ValueError):  # closed from another thread
            return b""

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()  # our own child, by its pid
        self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
