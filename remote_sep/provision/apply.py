"""Run a bootstrap over the Host interface: inspect, plan, then each step unless satisfied.

`bootstrap()` is the core the CLI calls. It never prints: progress goes to `report(event)`
as plain dicts (no secrets, ever), so the CLI renders them and tests read them.
A provisioned host costs one round trip: the facts script also reads the stamp.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from remote_sep.errors import Interrupted, RemoteSepError
from remote_sep.hosts.base import Host
from remote_sep.hosts.profile import HostProfile
from remote_sep.hosts.shell import quote, quote_argv
from remote_sep.provision import gated, uv_steps
from remote_sep.provision import installer as installers
from remote_sep.provision import token as tokens
from remote_sep.provision.inspect import (
    HostFacts,
    add_pip_facts,
    env_prelude,
    facts_script,
    parse_facts,
    pip_facts_script,
)
from remote_sep.provision.plan import Plan, Step, build_plan, stamp_path, venv_python
from remote_sep.provision.prefetch import PrefetchWants, run_prefetch
from remote_sep.provision.stamp import done_steps, stamp_bytes, stamp_matches, stamp_record

Report = Callable[[dict[str, Any]], None]
# (host already has a token file) -> the local token, or None; may prompt when it has none.
TokenSource = Callable[[bool], str | None]
STEP_OUTPUT_TAIL = 1500


@dataclass
class BootstrapResult:
    host: str
    plan_hash: str
    up_to_date: bool
    dry_run: bool
    facts: dict[str, Any]
    torch: dict[str, Any]
    model: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    installer: dict[str, Any] = field(default_factory=dict)  # name, why, fallback


def inspect(host: Host, profile: HostProfile) -> HostFacts:
    # base_python, not python: `python` is what jobs run with, not what the venv is made from.
    script = facts_script(profile.path, profile.hf_home, profile.base_python, _prelude(profile))
    return parse_facts(host.run(script, check=False).text)


def _prelude(profile: HostProfile) -> str:
    return env_prelude(profile.path_prepend, profile.env)


def facts_summary(facts: HostFacts) -> dict[str, Any]:
    gpu = facts.gpus[0] if facts.gpus else None
    return {
        "os": facts.distro or facts.os, "python": facts.python, "base": facts.base,
        "disk_free_gb": None if facts.disk_free_gb is None else round(facts.disk_free_gb, 1),
        "nvidia_smi": facts.has_nvidia_smi,
        "cuda": ".".join(map(str, facts.cuda)) if facts.cuda else None,
        "gpu": gpu.name if gpu else None,
        "driver": gpu.driver if gpu else None,
        "compute_cap": ".".join(map(str, gpu.compute_cap)) if gpu and gpu.compute_cap else None,
        "vram_total_mb": gpu.mem_total_mb if gpu else None,
        "vram_used_mb": gpu.mem_used_mb if gpu else None,
        "ffmpeg": facts.ffmpeg_major, "hf_home": facts.hf_home,
    }


def bootstrap(host: Host, profile: HostProfile, *, model: str | None = None, cpu: bool = False,
              prefetch: bool = False, wants: PrefetchWants | None = None,
              dry_run: bool = False,
              token_source: TokenSource = lambda remote_has_token: None,
              token_origin: Callable[[bool], str] | None = None,
              report: Report = lambda event: None,
              confirm: Callable[[Plan], bool] = lambda plan: True) -> BootstrapResult:
    """Provision `host` for `profile`; idempotent and resumable. `confirm(plan)` is asked
    once before the first change; False cancels with nothing changed. `token_origin(host has
    a token)` names where the token would come from, for the dry run (never the token)."""
    facts = inspect(host, profile)
    report({"event": "inspect", **facts_summary(facts)})
    plan = build_plan(facts, profile, model=model, cpu=cpu, prefetch=prefetch)
    if facts.has_pip is None and not stamp_matches(facts.stamp, plan):
        # A complete but stale stamp skipped pip in the inspection: read it now (one trip).
        script = pip_facts_script(plan.facts_used.python, _prelude(profile))
        add_pip_facts(facts, host.run(script, check=False).text)
        plan = build_plan(facts, profile, model=model, cpu=cpu, prefetch=prefetch)
    if profile.python:
        plan.warnings.append(
            f"the profile sets python: {profile.python}; separate and batch run jobs with it, "
            f"not with the venv this bootstrap builds (remove `python:` to use the venv)")
    choice = plan.torch
    result = BootstrapResult(
        host=profile.name, plan_hash=plan.plan_hash, up_to_date=stamp_matches(facts.stamp, plan),
        dry_run=dry_run, facts=facts_summary(facts), model=plan.model_repo,
        torch={"index": choice.index_url, "tag": choice.tag,
               "packages": list(choice.torch_packages), "why": choice.why,
               "torchcodec": choice.with_torchcodec},
        warnings=list(plan.warnings), installer=_installer_summary(plan))
    report({"event": "torch_choice", **result.torch})
    report({"event": "installer", **result.installer})
    for warning in plan.warnings:
        report({"event": "warning", "message": warning})
    if dry_run:
        done = done_steps(facts.stamp)
        for step in plan.steps:
            status = "satisfied" if step.key and done.get(step.name) == step.key else "would run"
            entry = {"step": step.name, "title": step.title, "status": status,
                     "command": step.display}
            if step.kind == "token" and token_origin is not None:
                entry["token_from"] = token_origin(facts.has_token_file)
            result.steps.append(entry)
            report({"event": "plan_step", **entry})
        if plan.blockers:
            raise plan.blockers[0]
        return result
    if result.up_to_date and not prefetch:
        report({"event": "up_to_date", "plan_hash": plan.plan_hash})
        return result
    if plan.blockers:
        raise plan.blockers[0]
    if not confirm(plan):
        raise Interrupted("bootstrap cancelled; nothing was changed")
    plan = _provide_installer(host, profile, facts, plan, result, report,
                              lambda chosen: build_plan(facts, profile, model=model, cpu=cpu,
                                                        prefetch=prefetch, installer=chosen))
    _apply(host, profile, facts, plan, result, token_source, report, wants or PrefetchWants())
    return result


def _installer_summary(plan: Plan) -> dict[str, Any]:
    return {"name": plan.installer.name, "why": plan.installer.why,
            "fallback": plan.installer.fallback}


def _provide_installer(host: Host, profile: HostProfile, facts: HostFacts, plan: Plan,
                       result: BootstrapResult, report: Report,
                       rebuild: Callable[[installers.InstallerChoice], Plan]) -> Plan:
    """Fetch uv into P/tools when the plan needs it; when that fails under `installer: auto`,
    the plan rebuilt for pip (said in an event and in the result) is the one applied."""
    tool = next((step for step in plan.steps if step.kind == "tool"), None)
    if tool is None:
        return plan
    report({"event": "step_start", "step": tool.name, "title": tool.title})
    res = host.run(_prelude(profile) + tool.script, check=False)
    if res.exit_code == 0:
        _note(result, report, tool, "done", res.text.strip().splitlines()[-1][:200]
              if res.text.strip() else "ok")
        return plan
    reason = installers.failure_reason(res.stderr.decode("utf-8", "replace"), res.text)
    if profile.installer == "uv":
        raise RemoteSepError(
            f"could not install uv into {uv_steps.tools_dir(facts.base)}: {reason}",
            hint="fix the cause (network, an index serving uv, a writable path), or set "
            "`installer: auto` (falls back to pip) or `installer: pip` in the host profile",
            kind="disk_full" if "No space left" in reason else "not_provisioned")
    _note(result, report, tool, "failed", reason)
    plan = rebuild(installers.fell_back(reason))
    result.plan_hash = plan.plan_hash
    result.installer = _installer_summary(plan)
    report({"event": "installer", **result.installer})
    return plan


def _apply(host: Host, profile: HostProfile, facts: HostFacts, plan: Plan,
           result: BootstrapResult, token_source: TokenSource, report: Report,
           wants: PrefetchWants) -> None:
    keys = {step.name: step.key for step in plan.install_steps}
    done = {name: key for name, key in done_steps(facts.stamp).items() if keys.get(name) == key}
    if facts.stamp is not None and not result.up_to_date:
        # The venv is about to change: the old stamp must stop saying "complete" first.
        host.write_bytes(stamp_path(facts.base), stamp_bytes(stamp_record(plan, done, False)))
    prelude = _prelude(profile)
    token: str | None = None
    for step in plan.steps:
        if step.kind == "tool" or (result.up_to_date and step.kind != "prefetch"):
            continue  # the installer ran before; --prefetch on a provisioned host: the download
        if step.key and done.get(step.name) == step.key:
            _note(result, report, step, "skipped", "already done")
            continue
        report({"event": "step_start", "step": step.name, "title": step.title})
        if step.kind == "run":
            detail = _run_step(host, step, prelude)
            if step.key:
                done[step.name] = step.key
                record = stamp_record(plan, done, False)
                host.write_bytes(stamp_path(facts.base), stamp_bytes(record))
        elif step.kind == "token":
            token, detail = _token_step(host, facts, token_source)
        elif step.kind == "prefetch":
            done_bytes = run_prefetch(
                host, base=facts.base, python=venv_python(facts.base), hf_home=facts.hf_home,
                model=plan.model_repo, wants=wants, report=report, prelude=prelude,
                endpoint=profile.env.get("HF_ENDPOINT"), token=token, name=profile.name)
            detail = (f"{len(done_bytes['components'])} component(s) in the cache, "
                      f"{done_bytes['bytes'] / 1e6:.1f} MB downloaded")
        else:
            detail = _hub_step(host, profile, facts, plan, step, token, prelude)
        _note(result, report, step, "done", detail)
    if not result.up_to_date:
        host.write_bytes(stamp_path(facts.base), stamp_bytes(stamp_record(plan, done, True)))
        report({"event": "stamp", "plan_hash": plan.plan_hash})


def _note(result: BootstrapResult, report: Report, step: Step, status: str, detail: str) -> None:
    entry = {"step": step.name, "title": step.title, "status": status, "detail": detail}
    result.steps.append(entry)
    report({"event": "step_done", **entry})


def _run_step(host: Host, step: Step, prelude: str) -> str:
    # The installer's env (the host's pip config, maybe a credentialed index URL) goes on stdin.
    stdin = uv_steps.stdin_env(step.env) if step.env else None
    res = host.run(prelude + step.script, stdin=stdin, check=False)
    out = res.text.strip()
    if res.exit_code == 0:
        return out.splitlines()[-1][:200] if out else "ok"
    tail = (res.stderr.decode("utf-8", "replace").strip() or out)[-STEP_OUTPUT_TAIL:]
    if step.name == "verify" and res.exit_code == 3:
        raise RemoteSepError(f"torch is installed but cannot use the GPU: {out}",
                             hint="check the driver (nvidia-smi) and the chosen wheel index; "
                             "set torch_index/torch_spec in the profile to override",
                             kind="no_gpu")
    kind = "disk_full" if "No space left on device" in tail else "not_provisioned"
    raise RemoteSepError(
        f"bootstrap step '{step.name}' failed (exit {res.exit_code}):\n{tail}",
        hint="fix the cause and rerun `remote-sep bootstrap`: finished steps are skipped",
        kind=kind)


def _token_step(host: Host, facts: HostFacts,
                token_source: TokenSource) -> tuple[str | None, str]:
    token = token_source(facts.has_token_file)
    if not token:
        if facts.has_token_file:
            return None, f"no local token; keeping the one already in {facts.hf_home}"
        raise tokens.AuthFailed(
            "no Hugging Face token found (HF_TOKEN unset, no `hf auth login` cache)",
            hint="set HF_TOKEN or run `hf auth login` on this machine, then rerun bootstrap")
    path = f"{facts.hf_home}/token"
    if host.sha256(path) == tokens.token_sha256(token):
        return token, f"{path} already holds this token"
    q = quote(facts.hf_home)
    host.run(f"mkdir -p {q} && chmod 700 {q}")
    host.write_bytes(path, token.encode(), mode=0o600)
    return token, f"written to {path} (0600)"


def _hub_step(host: Host, profile: HostProfile, facts: HostFacts, plan: Plan, step: Step,
              token: str | None, prelude: str) -> str:
    script = (prelude + f"export HF_HOME={quote(facts.hf_home)}\n"
              + quote_argv([venv_python(facts.base), "-c", gated.CHECK_SNIPPET,
                            plan.model_repo]))
    # The token goes on stdin only; empty stdin: the snippet uses the host's token file.
    res = host.run(script, stdin=(token or "").encode(), check=False)
    verdict = gated.parse_verdict(res.text)
    if verdict.get("status") == "error" and res.exit_code != 0:
        verdict["error"] = tokens.redact(res.stderr.decode("utf-8", "replace").strip()[-300:],
                                         token) or verdict.get("error")
    gated.raise_for_verdict(verdict, plan.model_repo, profile.env.get("HF_ENDPOINT"))
    return f"token can read {plan.model_repo}"
