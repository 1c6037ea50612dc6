"""The core of `hosts check`: one remote script, one round trip (`hosts trust` is ssh/trust.py)."""

from __future__ import annotations

import json
from typing import Any

from remote_sep.hosts.profile import HostProfile
from remote_sep.hosts.shell import quote, quote_argv, remote_path_expr
from remote_sep.provision.inspect import STAMP_NAME, env_prelude

GPU_QUERY = ("nvidia-smi", "--query-gpu=name,driver_version,memory.total,memory.used",
             "--format=csv,noheader")
NO_GPU = "no NVIDIA GPU"
_PY_VERSION = "import sys; print(sys.executable, '%d.%d.%d' % sys.version_info[:3])"
# What the payload needs, probed with the interpreter jobs would run with (one JSON line).
_RUNTIME_PROBE = """\
import json
r = {}
try:
    import torch
    r.update(torch=torch.__version__, cuda=torch.cuda.is_available(), torch_cuda=torch.version.cuda)
except Exception as e:
    r["torch_error"] = f"{type(e).__name__}: {e}"[:300]
try:
    import sam_audio
    r.update(sam_audio=True, standin=bool(getattr(sam_audio, "IS_STANDIN", False)))
except Exception as e:
    r["sam_audio_error"] = f"{type(e).__name__}: {e}"[:300]
print(json.dumps(r))
"""


def check_script(profile: HostProfile) -> str:
    """POSIX sh that prints `key=value` lines (values single-line); always exits 0."""
    python = profile.python or "python3"
    return env_prelude(profile.path_prepend, profile.env) + f"""\
BASE={remote_path_expr(profile.path)}
echo "base=$BASE"
if out=$({remote_path_expr(python)} -c {quote(_PY_VERSION)} 2>&1); then
  echo "python=$out"
else
  echo "python_error=$(printf '%s\\n' "$out" | tail -n 1)"
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  if out=$({quote_argv(GPU_QUERY)} 2>&1); then
    printf '%s\\n' "$out" | sed 's/^/gpu=/'
  else
    echo "gpu_error=nvidia-smi failed: $(printf '%s\\n' "$out" | tail -n 1)"
  fi
else
  echo "gpu_error={NO_GPU}"
fi
d="$BASE"; while [ ! -d "$d" ]; do d=$(dirname "$d"); done
echo "disk_path=$d"
echo "disk_free_kb=$(df -Pk "$d" 2>/dev/null | awk 'NR==2 {{print $4}}')"
[ -x "$BASE/venv/bin/python" ] && echo "venv=yes"
[ -f "$BASE/venv/{STAMP_NAME}" ] && echo "stamp=yes"
RUN_PY={remote_path_expr(profile.python) if profile.python else '"$BASE/venv/bin/python"'}
if command -v "$RUN_PY" >/dev/null 2>&1; then
  echo "runtime=$("$RUN_PY" -c {quote(_RUNTIME_PROBE)} 2>/dev/null | tail -n 1)"
fi
exit 0
"""


def parse_check(text: str, profile: HostProfile) -> dict[str, Any]:
    """The script's output -> the `hosts check` result (the --json body)."""
    report: dict[str, Any] = {
        "host": profile.name, "target": profile.describe(), "reachable": True,
        "base": None, "python": {"command": profile.python or "python3"},
        "gpus": [], "gpu_error": None, "disk": {"path": None, "free_bytes": None},
        "venv": False, "stamp": False,
    }
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if key == "base":
            report["base"] = value
        elif key == "python":
            executable, _, version = value.rpartition(" ")
            report["python"].update(executable=executable, version=version)
        elif key == "python_error":
            report["python"]["error"] = value or "not found"
        elif key == "gpu":
            report["gpus"].append(_gpu(value))
        elif key == "gpu_error":
            report["gpu_error"] = value
        elif key == "disk_path":
            report["disk"]["path"] = value
        elif key == "disk_free_kb" and value.isdigit():
            report["disk"]["free_bytes"] = int(value) * 1024
        elif key in ("venv", "stamp"):
            report[key] = True
        elif key == "runtime":
            report["runtime"] = _json_or_none(value)
    # A profile `python` is the user's own environment: ready when it imports what jobs need.
    runtime = report.get("runtime") or {}
    if profile.python:
        report["provisioned"] = bool(runtime.get("torch") and runtime.get("sam_audio"))
    else:
        report["provisioned"] = report["venv"] and report["stamp"]
    if not report["provisioned"] and not profile.python:
        report["hint"] = f"run remote-sep bootstrap {profile.name}"
    return report


def _json_or_none(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _runtime_line(runtime: dict[str, Any] | None) -> str:
    if runtime is None:
        return "no payload interpreter yet"
    torch = (f"torch {runtime['torch']} (CUDA {'yes' if runtime.get('cuda') else 'no'})"
             if runtime.get("torch") else f"torch: {runtime.get('torch_error', 'missing')}")
    if runtime.get("sam_audio"):
        sam = "sam_audio STAND-IN (tests only)" if runtime.get("standin") else "sam_audio ok"
    else:
        sam = f"sam_audio: {runtime.get('sam_audio_error', 'missing')}"
    return f"{torch}, {sam}"


def _gpu(value: str) -> dict[str, str]:
    cells = [c.strip() for c in value.split(",")] + ["", "", ""]
    return {"name": cells[0], "driver": cells[1], "memory_total": cells[2],
            "memory_used": cells[3]}


def check_host(profile: HostProfile) -> dict[str, Any]:
    """Connect (host keys checked) and inspect the host; connection errors propagate."""
    from remote_sep.ssh.host import connect  # the SSH stack loads only for commands that connect

    with connect(profile) as host:
        result = host.run(check_script(profile), check=True, timeout=60)
    return parse_check(result.text, profile)


def describe(report: dict[str, Any]) -> list[str]:
    """Plain lines for the terminal."""
    python = report["python"]
    who = report["target"] if report["target"].startswith(report["host"]) else \
        f"{report['host']} ({report['target']})"
    lines = [f"{who}: reachable"]
    if "version" in python:
        lines.append(f"python       {python['version']} ({python['executable']})")
    else:
        lines.append(f"python       {python['command']}: {python.get('error', 'not found')}")
    if report["gpus"]:
        for gpu in report["gpus"]:
            lines.append(f"gpu          {gpu['name']}, driver {gpu['driver']}, "
                         f"{gpu['memory_used']} used of {gpu['memory_total']}")
    else:
        lines.append(f"gpu          {report['gpu_error'] or NO_GPU}")
    free = report["disk"]["free_bytes"]
    if free is not None:
        lines.append(f"disk         {free / 1e9:.1f} GB free under {report['disk']['path']}")
    lines.append(f"base path    {report['base']}")
    lines.append(f"runtime      {_runtime_line(report.get('runtime'))}")
    state = "yes" if report["provisioned"] else "no"
    if report.get("hint"):
        state += f" ({report['hint']})"
    lines.append(f"provisioned  {state}")
    return lines
