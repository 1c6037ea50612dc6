"""The bootstrap plan: host facts + profile -> ordered steps and a stamp hash. Pure, no I/O.

Every install step carries a `key`: a hash of its own commands chained with the keys before
it, so a changed plan re-runs the first changed step and everything after it, and a host
whose stamp records a step's key skips it (that is what makes a failed bootstrap resumable).
`plan_hash` covers the whole install (python, index, torch spec, sam_audio spec, pins,
payload deps, pip args); the token, the gated check and prefetch are not part of it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from remote_sep.errors import ConfigError, RemoteSepError
from remote_sep.hosts.profile import HostProfile
from remote_sep.hosts.shell import quote, quote_argv
from remote_sep.provision import installer as installers
from remote_sep.provision import pip_config
from remote_sep.provision.inspect import HostFacts
from remote_sep.provision.torch_index import TorchChoice, choose_torch

STAMP_VERSION = 1
SAM_AUDIO_COMMIT = "68b48d48fff1ad776d3afefbe634eb5f5d60ba7b"
DEFAULT_SAM_AUDIO_SPEC = (
    f"sam_audio @ git+https://github.com/facebookresearch/sam-audio.git@{SAM_AUDIO_COMMIT}"
)
# huggingface_hub >= 1 breaks SAMAudio.from_pretrained; transformers 5 needs hub >= 1.
DEFAULT_PINS = ("huggingface_hub<1", "transformers<5")
PAYLOAD_DEPS = ("numpy", "soundfile", "soxr")
# The ONE Ray every node of a cluster gets (a profile with `ray:`; `cluster up` bootstraps its
# hosts so): nodes whose Ray or Python minor version differ fail silently, so no profile
# `pins` entry can change it.
RAY_VERSION = "2.60.0"
RAY_REQUIREMENT = f"ray[default]=={RAY_VERSION}"
MODELS = ("small", "base", "large", "small-tv", "base-tv", "large-tv")
DEFAULT_MODEL = "large"


def venv_dir(base: str) -> str:
    return base.rstrip("/") + "/venv"


def venv_python(profile_base: str) -> str:
    """The interpreter bootstrap installs under a base path (absolute or '~/…')."""
    return venv_dir(profile_base) + "/bin/python"


def stamp_path(base: str) -> str:
    return venv_dir(base) + "/remote-sep-stamp.json"


def model_repo(model: str | None) -> str:
    """'large' -> 'facebook/sam-audio-large'; a full repo id is kept as written."""
    name = (model or DEFAULT_MODEL).strip()
    if "/" in name:
        return name
    if name not in MODELS:
        raise RemoteSepError(
            f"unknown model {name!r}", hint=f"one of: {', '.join(MODELS)} (or a repo id)",
            kind="unknown_model",
        )
    return f"facebook/sam-audio-{name}"


def check_sam_audio_spec(spec: str) -> str:
    """Refuse the PyPI `sam-audio` placeholder (an empty package shadowing the import)."""
    text = spec.strip()
    name = text.split("@", 1)[0].split("[", 1)[0]
    for op in ("==", ">=", "<=", "~=", "!=", ">", "<"):
        name = name.split(op, 1)[0]
    is_sam_name = name.strip().lower().replace("_", "-") == "sam-audio"
    from_pypi = "@" not in text and "/" not in text
    if not text or (is_sam_name and from_pypi):
        raise ConfigError(
            f"sam_audio_spec {spec!r} would install the empty PyPI placeholder `sam-audio`",
            hint=f"use the git spec (default: {DEFAULT_SAM_AUDIO_SPEC}) or a local path",
        )
    return text


def requirement_name(req: str) -> str:
    """'huggingface_hub<1' -> 'huggingface-hub' (PEP 503 normalised)."""
    name = req.strip()
    for stop in ("@", "[", ";", "=", "<", ">", "~", "!", " "):
        name = name.split(stop, 1)[0]
    return name.lower().replace("_", "-").replace(".", "-")


def merge_pins(defaults: tuple[str, ...], extra: list[str]) -> list[str]:
    """The profile's `pins` add to the defaults; one naming a default package replaces it."""
    merged = {requirement_name(p): p for p in defaults}
    merged.update({requirement_name(p): p for p in extra})
    return list(merged.values())


def ray_pins(profile: HostProfile, pins: list[str]) -> list[str]:
    """A cluster profile's pins end with the one pinned Ray (replacing any `ray` pin)."""
    if not profile.ray:
        return pins
    return [p for p in pins if requirement_name(p) != "ray"] + [RAY_REQUIREMENT]


@dataclass(frozen=True)
class FactsUsed:
    """The host facts the install depends on; stored in the stamp so a later check
    (ensure_provisioned) can recompute the hash from the profile without re-inspecting."""

    base: str
    python: str
    cuda: tuple[int, int] | None
    cc: tuple[int, int] | None
    cpu: bool
    installer: str = "pip"  # what built the venv: "uv" | "pip" (stamps before uv: pip)

    @classmethod
    def from_facts(cls, facts: HostFacts, cpu: bool, installer: str = "pip") -> FactsUsed:
        cc = facts.gpus[0].compute_cap if facts.gpus else None
        if facts.python is None:
            raise RemoteSepError(
                "no Python >= 3.11 found on the host"
                + (f" (found: {', '.join(f'{p} {v[0]}.{v[1]}' for p, v in facts.pythons)})"
                   if facts.pythons else ""),
                hint="install python3.11 (e.g. apt-get install python3.11 python3.11-venv) "
                "or set `base_python:` in the host profile",
                kind="not_provisioned",
            )
        return cls(facts.base, facts.python, None if cpu else facts.cuda, None if cpu else cc, cpu,
                   installer)

    @classmethod
    def from_json(cls, data: dict) -> FactsUsed:
        def pair(v: object) -> tuple[int, int] | None:
            return (int(v[0]), int(v[1])) if isinstance(v, list | tuple) and len(v) == 2 else None

        return cls(str(data["base"]), str(data["python"]), pair(data.get("cuda")),
                   pair(data.get("cc")), bool(data.get("cpu")),
                   str(data.get("installer") or "pip"))


@dataclass
class Step:
    name: str
    title: str
    kind: str  # "run" (a remote shell script) | "token" | "gated" | "prefetch"
    script: str = ""  # for "run": the remote script, every value quoted
    display: str = ""  # what --dry-run prints (never a secret)
    key: str = ""  # chained hash; empty for steps not recorded in the stamp
    env: dict[str, str] = field(default_factory=dict)  # for "run": sent on stdin, not argv


@dataclass
class Plan:
    facts_used: FactsUsed
    torch: TorchChoice
    model_repo: str
    inputs: dict
    installer: installers.InstallerChoice
    steps: list[Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    blockers: list[RemoteSepError] = field(default_factory=list)  # stop before any change

    @property
    def plan_hash(self) -> str:
        return digest(self.inputs)

    @property
    def install_steps(self) -> list[Step]:
        return [s for s in self.steps if s.key]


def digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def plan_inputs(used: FactsUsed, profile: HostProfile) -> tuple[dict, TorchChoice]:
    """Everything the install depends on, as plain data: what the stamp hash covers."""
    choice = choose_torch(used.cuda, used.cc, cpu=used.cpu, index_override=profile.torch_index,
                          spec_override=profile.torch_spec)
    # The profile's explicit installer wins over the one the stamp recorded: switching it
    # re-provisions; `auto` keeps what the host resolved.
    used = replace(used, installer=installers.effective(profile.installer, used.installer))
    facts = asdict(used)
    if used.installer == "pip":
        del facts["installer"]  # pip plans hash as before uv existed: their stamps stay valid
    inputs = {
        "v": STAMP_VERSION,
        "facts": facts,
        "index": choice.index_url,
        "torch": list(choice.torch_packages),
        "sam_audio": check_sam_audio_spec(profile.sam_audio_spec or DEFAULT_SAM_AUDIO_SPEC),
        "pins": ray_pins(profile, merge_pins(DEFAULT_PINS, profile.pins or [])),
        "payload_deps": list(PAYLOAD_DEPS),
        "pip_args": list(profile.pip_args),
    }
    return inputs, choice


def build_plan(facts: HostFacts, profile: HostProfile, *, model: str | None = None,
               cpu: bool = False, prefetch: bool = False,
               installer: installers.InstallerChoice | None = None) -> Plan:
    """The ordered steps for this host and profile (no remote access). `installer`: a choice
    made already (bootstrap's fallback to pip), instead of choosing from the facts."""
    chosen = installer or installers.choose(profile.installer, facts)
    used = FactsUsed.from_facts(facts, cpu, chosen.name)
    inputs, choice = plan_inputs(used, profile)
    plan = Plan(used, choice, model_repo(model or profile.model), inputs, chosen)
    cpu_command = f"remote-sep bootstrap {profile.name} --cpu"
    if not cpu and not facts.has_nvidia_smi:
        plan.blockers.append(RemoteSepError(
            "no NVIDIA GPU found on the host (nvidia-smi is not on PATH)",
            hint=f"install the NVIDIA driver, or run `{cpu_command}` to install CPU wheels "
            "(separation on CPU is very slow), then run your command again", kind="no_gpu"))
    elif not cpu and facts.cuda is None:
        plan.blockers.append(RemoteSepError(
            "nvidia-smi did not report a CUDA version (is the driver loaded?)",
            hint=f"run nvidia-smi on the host; or `{cpu_command}` to go without the GPU, "
            "then run your command again", kind="no_gpu"))
    if cpu:
        plan.warnings.append("--cpu: installing CPU wheels; separation will be very slow")
    if facts.low_disk():
        plan.warnings.append(f"only {facts.disk_free_gb:.1f} GB free under {facts.base}: "
                             "weights and cache need about 20 GB")
    _add_install_steps(plan, facts, profile)
    plan.steps.append(Step("token", "Hugging Face token -> $HF_HOME/token (0600)", "token",
                           display=f"write <HF token redacted> to {facts.hf_home}/token "
                           "(mode 0600, dir 0700, over SFTP)"))
    plan.steps.append(Step("gated", f"access check for {plan.model_repo}", "gated",
                           display=f"{quote(venv_python(facts.base))} -c <hub auth_check "
                           f"{plan.model_repo}> (token on stdin)"))
    if prefetch:
        py = quote(venv_python(facts.base))
        plan.steps.append(Step("prefetch", f"download {plan.model_repo} and every component "
                               "its settings load", "prefetch",
                               display=f"{py} -m remote_payload prefetch --model "
                               f"{plan.model_repo} (the host's token file; sizes and free disk "
                               "checked first)"))
    return plan


def _add_install_steps(plan: Plan, facts: HostFacts, profile: HostProfile) -> None:
    py = venv_python(facts.base)
    ffmpeg = _ffmpeg_step(plan, facts, profile)
    if ffmpeg:  # a system step: decided by the facts each run, so not in the stamp chain
        plan.steps.append(Step(ffmpeg[0], ffmpeg[1], "run", script=ffmpeg[2], display=ffmpeg[2]))
    if plan.installer.install_uv:  # a tool, not the venv: run when missing, not in the chain
        tool = installers.install_uv_command(plan.facts_used.python, facts.base)
        plan.steps.append(Step(tool.name, tool.title, "tool", script=tool.script,
                               display=tool.script))
    commands = installers.install_commands(
        plan.installer.name, base=facts.base, python=plan.facts_used.python,
        venv=venv_dir(facts.base), venv_py=py, torch=plan.torch,
        sam_audio=[plan.inputs["sam_audio"], *plan.inputs["pins"]],
        payload_deps=list(PAYLOAD_DEPS), extra=list(profile.pip_args), config=facts.pip_config)
    commands.append(installers.InstallCommand(
        "verify", "verify imports: torch, CUDA, sam_audio",
        quote_argv([py, "-c", _verify_snippet(plan.facts_used.cpu)])))
    chain = ""
    for command in commands:
        # The env (the host's pip config) is not hashed: a changed mirror reinstalls nothing.
        chain = digest([chain, command.name, command.script])
        display = (f"{quote(py)} -c <import torch, sam_audio; check torch.cuda>"
                   if command.name == "verify" else command.script)
        if command.env:
            display = f"[stdin env: {pip_config.describe(command.env)}]\n{display}"
        plan.steps.append(Step(command.name, command.title, "run", script=command.script,
                               display=display, key=chain, env=command.env))


def _ffmpeg_step(plan: Plan, facts: HostFacts, profile: HostProfile) -> tuple[str, str, str] | None:
    """torchcodec loads FFmpeg 4-7 shared libraries; check, install with apt if allowed."""
    major = facts.ffmpeg_major
    if not plan.torch.with_torchcodec or (facts.has_ffmpeg_libs and major is not None
                                          and major < 8):
        return None
    problem = ("FFmpeg shared libraries not found" if not facts.has_ffmpeg_libs
               else f"FFmpeg {major} found; torchcodec needs FFmpeg 4-7")
    if profile.allow_sudo and facts.has_apt:
        sudo = "" if facts.is_root else "sudo -n "
        script = (f"{sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
                  f"{sudo}apt-get install -y -qq ffmpeg")
        plan.warnings.append(f"{problem}: installing ffmpeg with apt")
        return ("ffmpeg", "install FFmpeg shared libraries (apt)", script)
    plan.blockers.append(RemoteSepError(
        f"{problem} on the host (torchcodec, which sam_audio imports, loads them)",
        hint="on the host run `sudo apt-get install -y ffmpeg` (Debian/Ubuntu; any FFmpeg 4-7 "
        "with its shared libraries, e.g. libavutil57), or set `allow_sudo: true` in the host "
        "profile to let bootstrap do it", kind="not_provisioned"))
    return None


def _verify_snippet(cpu: bool) -> str:
    # Prints one JSON line; with a GPU plan, a torch without CUDA is a failure.
    return (
        "import json, sys, torch, sam_audio\n"
        "ok = torch.cuda.is_available()\n"
        "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, "
        "'cuda_available': ok}))\n"
        f"sys.exit(0 if ok or {cpu!r} else 3)\n"
    )
