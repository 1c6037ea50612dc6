"""uv provisioning, pure parts: the host's pip config -> UV_*, the uv command lines and their
indexes per step, the installer choice and fallback, the installer in the plan hash."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from test_provision_plan import FACTS

from remote_sep import profiles
from remote_sep.errors import ConfigError, NotProvisioned, RemoteSepError
from remote_sep.hosts.profile import HostProfile
from remote_sep.provision import installer as installers
from remote_sep.provision import pip_config, uv_steps
from remote_sep.provision.inspect import parse_facts
from remote_sep.provision.plan import build_plan
from remote_sep.provision.stamp import check_stamp, stamp_matches, stamp_record

CUDA = "https://download.pytorch.org/whl/cu128"
# What `python -m pip config list` printed on this machine (values as pip's %r writes them),
# plus an install-section and a credentialed index to check precedence and masking.
CONFIG_LIST = """\
:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.default-timeout='180'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/old.pem'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/opt/wheels /srv/more wheels'
global.index-url='https://alice:s3cret@mirror.example/simple'
install.index-url='https://bob:hunter2@mirror.example/pypi/simple'
global.trusted-host='mirror.example\\nother.example'
download.index-url='https://ignored.example/simple'
"""
PIP_LINES = "pip=yes\n" + "".join(f"pipconf={line}\n" for line in CONFIG_LIST.splitlines())


def uv_facts(extra: str = PIP_LINES):
    return parse_facts(FACTS + extra)


def words(script: str) -> list[str]:
    """The uv command of a step script (its last line), split as the shell would."""
    return shlex.split(script.strip().splitlines()[-1])


def test_pip_config_precedence_env_over_install_over_global():
    options = pip_config.parse_config_list(CONFIG_LIST)
    assert options["cert"] == "/etc/ssl/certs/ca-certificates.crt"  # :env: wins
    assert options["index-url"] == "https://bob:hunter2@mirror.example/pypi/simple"  # install
    assert options["find-links"] == "/opt/wheels"  # :env: over global
    assert "https://ignored.example/simple" not in options.values()  # not an install section


def test_pip_config_translates_to_uv_variables():
    config = pip_config.from_config_list(CONFIG_LIST)
    env = pip_config.uv_env(config)
    assert env == {
        "UV_INDEX_URL": "https://bob:hunter2@mirror.example/pypi/simple",
        "UV_EXTRA_INDEX_URL": "file:///opt/pypi/simple file:///opt/pypi-more/simple",
        "UV_FIND_LINKS": "/opt/wheels",
        "UV_INSECURE_HOST": "mirror.example other.example",
        "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
        "UV_HTTP_TIMEOUT": "180",
        "UV_CONSTRAINT": "/etc/xdg/pip/constraints.txt",
    }
    assert "UV_INDEX_URL" not in pip_config.uv_env(config, indexes=False)
    assert "UV_EXTRA_INDEX_URL" not in pip_config.uv_env(config, indexes=False)
    two = pip_config.from_config_list("global.find-links='/a /b'\n:env:.no-index='true'\n"
                                      ":env:.proxy='http://p:3128'\n")
    assert pip_config.uv_env(two) == {"UV_FIND_LINKS": "/a,/b", "UV_NO_INDEX": "1",
                                      "HTTPS_PROXY": "http://p:3128",
                                      "HTTP_PROXY": "http://p:3128"}
    assert pip_config.from_config_list("garbage\nglobal.x=not-a-literal\n") == \
        pip_config.PipConfig()


def test_credentials_in_urls_are_masked():
    assert pip_config.mask("https://u:p@h/simple and http://tok@x/") == \
        "https://***@h/simple and http://***@x/"
    assert pip_config.mask("file:///opt/pypi/simple") == "file:///opt/pypi/simple"
    plan = build_plan(uv_facts(), HostProfile(name="g"))
    shown = "\n".join(step.display + step.title for step in plan.steps)
    assert "hunter2" not in shown and "bob" not in shown and "***@mirror.example" in shown
    # ... and no step script (the command line) carries the credential: it goes on stdin.
    assert not [s for s in plan.steps if "hunter2" in s.script]
    sam = next(s for s in plan.steps if s.name == "sam_audio")
    assert b"UV_INDEX_URL=https://bob:hunter2@" in uv_steps.stdin_env(sam.env)
    with pytest.raises(ValueError):
        uv_steps.stdin_env({"UV_INDEX_URL": "a\nexport EVIL=1"})


def test_uv_plan_torch_alone_from_the_cuda_index_later_steps_never_see_it():
    plan = build_plan(uv_facts(), HostProfile(name="g"))
    assert plan.installer.name == "uv" and plan.installer.install_uv
    names = [s.name for s in plan.steps]
    assert names[:6] == ["uv", "venv", "torch", "sam_audio", "payload_deps", "verify"]
    steps = {s.name: s for s in plan.steps}
    uv = "/srv/remote sep/tools/uv/bin/uv"
    torch = words(steps["torch"].script)
    assert torch[:6] == [uv, "pip", "install", "--python", "/srv/remote sep/venv/bin/python",
                         "--compile-bytecode"]
    assert torch[torch.index("--index-url") + 1] == CUDA and torch.count("--index-url") == 1
    assert "--index-strategy" not in torch  # uv's default first-index for this step
    assert [w for w in torch if not w.startswith("-") and "==" in w or "torch" in w][-4:] == \
        ["torch==2.9.1", "torchvision==0.24.1", "torchaudio==2.9.1", "torchcodec==0.8.*"]
    # The torch step gets no other index: none in its env, any in the shell dropped.
    assert not {"UV_INDEX_URL", "UV_EXTRA_INDEX_URL"} & set(steps["torch"].env)
    assert "unset UV_INDEX UV_EXTRA_INDEX_URL UV_INDEX_URL UV_DEFAULT_INDEX" in \
        steps["torch"].script
    assert steps["torch"].env["UV_FIND_LINKS"] == "/opt/wheels"
    for name in ("sam_audio", "payload_deps"):
        later = words(steps[name].script)
        assert CUDA not in steps[name].script and "--index-url" not in later
        assert later[later.index("--index-strategy") + 1] == "unsafe-best-match"
        assert "--compile-bytecode" in later
        assert steps[name].env["UV_INDEX_URL"].endswith("mirror.example/pypi/simple")
        assert "unset UV_INDEX" not in steps[name].script
    sam = words(steps["sam_audio"].script)
    assert "huggingface_hub<1" in sam and "transformers<5" in sam and "torch==2.9.1" in sam
    assert any("sam-audio.git@" in w for w in sam)
    venv = words(steps["venv"].script)
    assert venv == [uv, "venv", "--clear", "--python", "/usr/bin/python3.12",
                    "/srv/remote sep/venv"]
    assert "UV_PYTHON_DOWNLOADS=never" in steps["venv"].script


def test_uv_is_fetched_by_the_hosts_pip_on_a_temp_name_then_renamed():
    plan = build_plan(uv_facts(), HostProfile(name="g"))
    tool = plan.steps[0]
    assert tool.kind == "tool" and not tool.key  # a tool: not part of the venv's chain
    assert ("/usr/bin/python3.12 -m pip install --disable-pip-version-check --no-input "
            "--only-binary :all: --target \"$T/uv.part\" 'uv>=0.9,<0.14'") in tool.script
    assert tool.script.index('mv "$T/uv.part" "$T/uv"') > tool.script.index("--target")
    assert "T='/srv/remote sep/tools'" in tool.script
    present = build_plan(uv_facts(PIP_LINES + "uv=uv 0.13.9 (x86_64)\n"), HostProfile(name="g"))
    assert present.installer.name == "uv" and "uv 0.13.9" in present.installer.why
    assert [s.name for s in present.steps][0] == "venv"


def test_pip_when_chosen_or_when_the_host_has_no_pip():
    pip = build_plan(uv_facts(), HostProfile(name="g", installer="pip"))
    assert pip.installer.name == "pip" and [s.name for s in pip.steps][0] == "venv"
    assert "'/srv/remote sep/venv/bin/python' -m pip install" in pip.steps[1].script
    assert not any(s.env for s in pip.steps)
    no_pip = build_plan(uv_facts("pip=no\n"), HostProfile(name="g"))
    assert no_pip.installer.name == "pip" and no_pip.installer.fallback
    assert "no pip" in no_pip.installer.why
    assert "-m venv --clear" in no_pip.steps[0].script
    with pytest.raises(RemoteSepError, match="no pip") as err:
        build_plan(uv_facts("pip=no\n"), HostProfile(name="g", installer="uv"))
    assert "installer: auto" in err.value.hint


def test_the_installer_is_in_the_hash_and_a_fallback_host_stays_on_pip():
    facts = uv_facts()
    profile = HostProfile(name="g")
    uv_plan = build_plan(facts, profile)
    pip_plan = build_plan(facts, HostProfile(name="g", installer="pip"))
    assert uv_plan.plan_hash != pip_plan.plan_hash
    assert [a.key == b.key for a, b in zip(uv_plan.install_steps, pip_plan.install_steps,
                                           strict=True)] == [False] * 5
    uv_record = stamp_record(uv_plan, {s.name: s.key for s in uv_plan.install_steps}, True)
    check_stamp(profile, uv_record)  # auto, resolved uv: provisioned
    check_stamp(HostProfile(name="g", installer="uv"), uv_record)  # the same install
    with pytest.raises(NotProvisioned, match="changed"):
        check_stamp(HostProfile(name="g", installer="pip"), uv_record)
    # auto fell back to pip at apply time: that plan's stamp keeps the host provisioned ...
    fallback = build_plan(facts, profile, installer=installers.fell_back("no network"))
    record = stamp_record(fallback, {s.name: s.key for s in fallback.install_steps}, True)
    check_stamp(profile, record)
    # ... and the next bootstrap chooses pip again (no uv retry, nothing to do) ...
    again_facts = uv_facts()
    again_facts.stamp = record
    again = build_plan(again_facts, profile)
    assert again.installer.name == "pip" and stamp_matches(record, again)
    # ... until the profile asks for uv.
    with pytest.raises(NotProvisioned, match="changed"):
        check_stamp(HostProfile(name="g", installer="uv"), record)
    assert build_plan(again_facts, HostProfile(name="g", installer="uv")).installer.name == "uv"


def test_a_stamp_from_before_uv_stays_valid_and_keeps_pip():
    """A host bootstrapped with pip before uv existed: its stamp (no installer recorded, the
    old hash) still passes for `separate`, and bootstrap keeps pip (nothing to reinstall)."""
    facts = uv_facts()
    pip_plan = build_plan(facts, HostProfile(name="g", installer="pip"))
    old = stamp_record(pip_plan, {s.name: s.key for s in pip_plan.install_steps}, True)
    assert "installer" not in old["facts"]
    check_stamp(HostProfile(name="g"), old)
    facts.stamp = old
    again = build_plan(facts, HostProfile(name="g"))
    assert again.installer.name == "pip" and stamp_matches(old, again)
    assert "installer: uv" in again.installer.why


def test_failure_reason_names_the_error_and_masks_urls():
    stderr = ("WARNING: Retrying ... https://u:pw@idx/simple/uv/\n"
              "ERROR: Could not find a version that satisfies the requirement uv<0.14,>=0.9\n"
              "ERROR: No matching distribution found for uv<0.14,>=0.9 at https://u:pw@idx/\n")
    reason = installers.failure_reason(stderr)
    assert reason.startswith("ERROR: No matching distribution") and "pw" not in reason
    assert "Read-only file system" in installers.failure_reason(
        "OSError: [Errno 30] Read-only file system: '/b/tools/uv.part'\n")


def test_facts_parse_pip_and_uv_lines():
    facts = uv_facts(PIP_LINES + "uv=uv 0.13.9 (x86_64-unknown-linux-gnu)\n")
    assert facts.has_pip is True and facts.uv_version.startswith("uv 0.13.9")
    assert facts.pip_config.find_links == ("/opt/wheels",)
    unread = parse_facts(FACTS)
    assert unread.has_pip is None and unread.pip_config is None and unread.uv_version is None
    assert parse_facts(FACTS + "pip=no\n").has_pip is False


def test_installer_field_in_hosts_yaml(tmp_path: Path):
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text("hosts:\n  a:\n    host: h\n    installer: UV\n  b:\n    host: h\n")
    loaded = profiles.load_hosts(hosts)
    assert loaded["a"].installer == "uv" and loaded["b"].installer == "auto"
    hosts.write_text("hosts:\n  a:\n    host: h\n    installer: conda\n")
    with pytest.raises(ConfigError, match="installer") as err:
        profiles.load_hosts(hosts)
    assert "auto, uv or pip" in str(err.value) and ":4" in str(err.value)
