"""Host facts in ONE round trip: OS, Python, disk, GPU, FFmpeg, sudo, HF home, the stamp.

`facts_script` builds a POSIX sh script (every profile value shell-quoted) that prints
`key=value` lines; `parse_facts` turns them into `HostFacts`. The stamp is read in the same
script so a provisioned host is recognised without a second trip.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from remote_sep.hosts.shell import export_lines, quote, remote_path_expr
from remote_sep.provision import pip_config, uv_steps
from remote_sep.provision.pip_config import PipConfig
from remote_sep.provision.torch_index import parse_version

PYTHON_CANDIDATES = ("python3.13", "python3.12", "python3.11", "python3")
STAMP_NAME = "remote-sep-stamp.json"
DEFAULT_HF_HOME = "~/.cache/huggingface"
LOW_DISK_GB = 20.0


def env_prelude(path_prepend: Iterable[str], env: Mapping[str, str]) -> str:
    """`export` lines for the profile's non-secret environment and PATH additions."""
    lines = export_lines(path_prepend, env)
    return "\n".join(lines) + ("\n" if lines else "")


def facts_script(base: str, hf_home: str | None, python: str | None, prelude: str) -> str:
    """The inspection script; prints one `key=value` per line (values never multi-line)."""
    candidates = (remote_path_expr(python) if python  # the profile's base_python; may be ~/…
                  else " ".join(quote(p) for p in PYTHON_CANDIDATES))
    check = "import sys; print(sys.executable, '%d.%d' % sys.version_info[:2])"
    return prelude + f"""\
BASE={remote_path_expr(base)}
HFH={remote_path_expr(hf_home or DEFAULT_HF_HOME)}
echo "base=$BASE"
echo "hf_home=$HFH"
echo "os=$(uname -sm 2>/dev/null)"
[ -r /etc/os-release ] && echo "distro=$(. /etc/os-release && echo "$PRETTY_NAME")"
echo "uid=$(id -u)"
command -v sudo >/dev/null 2>&1 && echo "sudo=yes"
command -v apt-get >/dev/null 2>&1 && echo "apt=yes"
PIPPY=""
for py in {candidates}; do
  if command -v "$py" >/dev/null 2>&1; then
    out=$("$py" -c {quote(check)} 2>/dev/null)
    echo "python=$out"
    # the first >= 3.11 reads pip's config below (no second start of each interpreter)
    [ -n "$PIPPY" ] || case "${{out##* }}" in 3.1[1-9]|3.[2-9][0-9]) PIPPY=$py;; esac
  fi
done
d="$BASE"; while [ ! -d "$d" ]; do d=$(dirname "$d"); done
echo "disk_free_kb=$(df -Pk "$d" 2>/dev/null | awk 'NR==2 {{print $4}}')"
if command -v nvidia-smi >/dev/null 2>&1; then
  echo "nvsmi=yes"
  echo "cuda=$(nvidia-smi 2>/dev/null \\
    | sed -n 's/.*CUDA Version: *\\([0-9.]*\\).*/\\1/p' | head -n1)"
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,memory.used \\
    --format=csv,noheader,nounits 2>/dev/null | sed 's/^/gpu=/'
fi
ldconfig -p 2>/dev/null | grep -o 'libavutil\\.so\\.[0-9]*' | head -n1 | sed 's/^/libavutil=/'
command -v ffmpeg >/dev/null 2>&1 && echo "ffmpeg=$(ffmpeg -version 2>/dev/null | head -n1)"
[ -s "$HFH/token" ] && echo "token_file=yes"
[ -x "$BASE/venv/bin/python" ] && echo "venv=yes"
S=""
if [ -r "$BASE/venv/{STAMP_NAME}" ]; then
  S=$(tr -d '\\n' < "$BASE/venv/{STAMP_NAME}")
  echo "stamp=$S"
fi
{uv_steps.facts_lines("BASE")}\
# pip and its config matter only for an install: a provisioned host skips the pip start.
case "$S" in *'"complete": true'*) ;; *)
{pip_config.facts_lines("PIPPY")}\
;; esac
"""


def pip_facts_script(python: str, prelude: str) -> str:
    """The pip part of the facts, alone: for a host whose complete stamp skipped it."""
    return prelude + f"PIPPY={quote(python)}\n" + pip_config.facts_lines("PIPPY")


@dataclass
class Gpu:
    name: str
    compute_cap: tuple[int, int] | None
    driver: str
    mem_total_mb: int | None
    mem_used_mb: int | None


@dataclass
class HostFacts:
    base: str
    hf_home: str
    os: str = ""
    distro: str = ""
    is_root: bool = False
    has_sudo: bool = False
    has_apt: bool = False
    pythons: list[tuple[str, tuple[int, int]]] = field(default_factory=list)
    disk_free_gb: float | None = None
    has_nvidia_smi: bool = False
    cuda: tuple[int, int] | None = None
    gpus: list[Gpu] = field(default_factory=list)
    libavutil_major: int | None = None
    ffmpeg_version: str | None = None
    has_token_file: bool = False
    has_venv: bool = False
    stamp: dict | None = None
    has_pip: bool | None = None  # None: not read (a complete stamp skips the pip start)
    pip_config: PipConfig | None = None
    uv_version: str | None = None  # `uv --version` of P/tools/uv, when it runs

    @property
    def python(self) -> str | None:
        """The first interpreter found that is Python >= 3.11."""
        for exe, version in self.pythons:
            if version >= (3, 11):
                return exe
        return None

    @property
    def ffmpeg_major(self) -> int | None:
        """FFmpeg major version from the shared libs (libavutil N -> FFmpeg N-52) or the CLI."""
        if self.libavutil_major is not None:
            return self.libavutil_major - 52
        if self.ffmpeg_version:
            parts = self.ffmpeg_version.split()
            if len(parts) >= 3 and parts[2][:1].isdigit():
                return int(parts[2].split(".")[0].split("-")[0])
        return None

    @property
    def has_ffmpeg_libs(self) -> bool:
        return self.libavutil_major is not None

    def low_disk(self) -> bool:
        return self.disk_free_gb is not None and self.disk_free_gb < LOW_DISK_GB


def _parse_gpu(value: str) -> Gpu | None:
    cells = [c.strip() for c in value.split(",")]
    if len(cells) < 5:
        return None

    def number(text: str) -> int | None:
        try:
            return int(float(text.split()[0]))
        except (ValueError, IndexError):
            return None

    return Gpu(cells[0], parse_version(cells[1]), cells[2], number(cells[3]), number(cells[4]))


def parse_facts(text: str) -> HostFacts:
    """Parse the script's output; unknown keys are ignored, odd values leave a field unset."""
    facts = HostFacts(base="", hf_home="")
    pip_lines: list[str] = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key in ("base", "hf_home", "os", "distro"):
            setattr(facts, key, value.strip())
        elif key == "uid":
            facts.is_root = value.strip() == "0"
        elif key in ("sudo", "apt", "nvsmi", "token_file", "venv"):
            attr = {"sudo": "has_sudo", "apt": "has_apt", "nvsmi": "has_nvidia_smi",
                    "token_file": "has_token_file", "venv": "has_venv"}[key]
            setattr(facts, attr, True)
        elif key == "python":
            exe, _, version = value.strip().rpartition(" ")
            parsed = parse_version(version)
            if exe and parsed and exe not in [p for p, _ in facts.pythons]:
                facts.pythons.append((exe, parsed))
        elif key == "disk_free_kb" and value.strip().isdigit():
            facts.disk_free_gb = int(value) / 1024 / 1024
        elif key == "cuda":
            facts.cuda = parse_version(value)
        elif key == "gpu":
            gpu = _parse_gpu(value)
            if gpu:
                facts.gpus.append(gpu)
        elif key == "libavutil":
            tail = value.strip().rsplit(".", 1)[-1]
            facts.libavutil_major = int(tail) if tail.isdigit() else None
        elif key == "ffmpeg":
            facts.ffmpeg_version = value.strip()
        elif key == "pip":
            facts.has_pip = value.strip() == "yes"
        elif key == "pipconf":
            pip_lines.append(value)
        elif key == "uv":
            facts.uv_version = value.strip() or None
        elif key == "stamp":
            try:
                loaded = json.loads(value)
            except json.JSONDecodeError:
                loaded = None  # a torn or foreign stamp counts as no stamp
            facts.stamp = loaded if isinstance(loaded, dict) else None
    if facts.has_pip:
        facts.pip_config = pip_config.from_config_list("\n".join(pip_lines))
    return facts


def add_pip_facts(facts: HostFacts, text: str) -> HostFacts:
    """Fill has_pip/pip_config from `pip_facts_script` output (no pip: has_pip False)."""
    more = parse_facts(text)
    facts.has_pip = bool(more.has_pip)
    facts.pip_config = more.pip_config
    return facts
