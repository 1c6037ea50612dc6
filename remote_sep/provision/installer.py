"""Which installer provisions the venv (uv or pip), and the install commands of each.

hosts.yaml `installer: auto|uv|pip` (default auto). auto takes uv, fetched by the host's own
pip into `P/tools/uv`, and falls back to pip when uv cannot be had (no pip on the host to
fetch it with, no network or index serving it, an unwritable `P/tools`), saying why. A host
remembers its installer in the stamp (`facts.installer`): a host that fell back stays on pip
at later bootstraps instead of retrying uv each time (`installer: uv` retries it).
Both installers get the same requirements, split the same way (torch alone from its index,
then sam_audio + pins with the torch pins repeated, then the payload's deps).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from remote_sep.errors import RemoteSepError
from remote_sep.hosts.shell import quote_argv
from remote_sep.provision import pip_config, uv_steps
from remote_sep.provision.inspect import HostFacts
from remote_sep.provision.torch_index import TorchChoice

SETTINGS = ("auto", "uv", "pip")
INSTALLERS = ("uv", "pip")
FAILURE_TAIL = 300


@dataclass(frozen=True)
class InstallerChoice:
    name: str  # "uv" | "pip"
    why: str
    install_uv: bool = False  # P/tools/uv is missing: fetch it first (the `uv` step)
    fallback: bool = False  # auto fell back to pip after trying uv


@dataclass
class InstallCommand:
    name: str
    title: str
    script: str
    env: dict[str, str] = field(default_factory=dict)  # sent on stdin, never on argv


def recorded(facts: HostFacts) -> str | None:
    """The installer this host's stamp says built its venv (None: no stamp). A pip stamp
    names none (stamps from before uv are pip stamps, and stay valid)."""
    stamp_facts = (facts.stamp or {}).get("facts")
    if not isinstance(stamp_facts, dict):
        return None
    name = stamp_facts.get("installer", "pip")
    return name if name in INSTALLERS else None


def effective(setting: str | None, used: str) -> str:
    """The installer the plan hash covers: the profile's explicit choice, else the one the
    host resolved (so `auto` on a host that fell back to pip stays provisioned)."""
    return setting if setting in INSTALLERS else used


def choose(setting: str | None, facts: HostFacts) -> InstallerChoice:
    """Pick the installer from the profile setting and the host facts (no remote access)."""
    setting = setting or "auto"
    if setting == "pip":
        return InstallerChoice("pip", "the profile sets installer: pip")
    if facts.uv_version:
        return InstallerChoice("uv", f"{facts.uv_version} in P/tools/uv")
    no_pip = facts.has_pip is False
    if setting == "auto":
        last = recorded(facts)
        if last == "pip":
            return InstallerChoice("pip", "this host's venv was built with pip (an earlier "
                                   "bootstrap, or a fallback); installer: uv in the profile "
                                   "switches it to uv")
        if no_pip:
            return InstallerChoice("pip", "uv unavailable: the host's Python has no pip to "
                                   "fetch it with; falling back to pip", fallback=True)
    if no_pip:
        raise RemoteSepError(
            "installer: uv, but the host's Python has no pip to fetch uv with",
            hint="install pip on the host (e.g. apt-get install python3-pip), or set "
            "`installer: auto` (falls back to pip) in the host profile", kind="not_provisioned")
    return InstallerChoice("uv", f"uv ({uv_steps.UV_REQUIREMENT}) from the host's pip "
                           "into P/tools/uv", install_uv=True)


def fell_back(reason: str) -> InstallerChoice:
    return InstallerChoice("pip", f"uv could not be installed ({reason}); falling back to pip",
                           fallback=True)


def failure_reason(stderr: str, stdout: str = "") -> str:
    """The telling line of a failed uv install (pip's last ERROR, else the last line)."""
    lines = [ln.strip() for ln in (stderr or stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR") or "Errno" in ln]
    text = (errors or lines or ["no output"])[-1]
    return pip_config.mask(text)[:FAILURE_TAIL]


def install_uv_command(python: str, base: str) -> InstallCommand:
    return InstallCommand("uv", f"fetch uv ({uv_steps.UV_REQUIREMENT}) with the host's pip "
                          "into P/tools/uv", uv_steps.install_uv_script(python, base))


def install_commands(installer: str, *, base: str, python: str, venv: str, venv_py: str,
                     torch: TorchChoice, sam_audio: list[str], payload_deps: list[str],
                     extra: list[str], config: pip_config.PipConfig | None) -> list[InstallCommand]:
    """venv, torch, sam_audio (+ pins + torch pins), payload_deps, for uv or for pip."""
    torch_title = f"install {' '.join(torch.torch_packages)} ({torch.tag})"
    sam_title = "install sam_audio + pins " + " ".join(sam_audio[1:])
    deps_title = "install the payload's deps " + " ".join(payload_deps)
    torch_pins = [p for p in torch.torch_packages if "==" in p]
    if installer == "pip":
        index_args = ["--index-url", torch.index_url] if torch.index_url else []
        return [
            # --clear: a half-made venv from an interrupted run is rebuilt, not reused
            InstallCommand("venv", f"create the venv with {python}",
                           quote_argv([python, "-m", "venv", "--clear", venv])),
            InstallCommand("torch", torch_title,
                           _pip(venv_py, index_args + extra, list(torch.torch_packages))),
            # sam_audio and the pins resolve together (so its deps never pull
            # huggingface_hub >= 1); the torch pins keep the CUDA build installed above.
            InstallCommand("sam_audio", sam_title,
                           _pip(venv_py, extra, [*sam_audio, *torch_pins])),
            InstallCommand("payload_deps", deps_title, _pip(venv_py, extra, payload_deps)),
        ]
    cfg = config or pip_config.PipConfig()
    everywhere = pip_config.uv_env(cfg)
    return [
        InstallCommand("venv", f"create the venv with {python} (uv)",
                       uv_steps.venv_script(base, python, venv), everywhere),
        InstallCommand("torch", torch_title + " (uv)", uv_steps.install_script(
            base, venv_py, list(torch.torch_packages), extra=extra, index_url=torch.index_url),
            # the CUDA index alone: the host's own indexes are left out of this step
            pip_config.uv_env(cfg, indexes=not torch.index_url)),
        InstallCommand("sam_audio", sam_title + " (uv)", uv_steps.install_script(
            base, venv_py, [*sam_audio, *torch_pins], extra=extra, best_match=True), everywhere),
        InstallCommand("payload_deps", deps_title + " (uv)", uv_steps.install_script(
            base, venv_py, payload_deps, extra=extra, best_match=True), everywhere),
    ]


def _pip(venv_py: str, args: list[str], packages: list[str]) -> str:
    return quote_argv([venv_py, "-m", "pip", "install", "--disable-pip-version-check",
                       *args, *packages])
