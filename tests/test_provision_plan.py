"""Pure bootstrap logic: the wheel table, fact parsing, the plan, its hash chain, the stamp."""

from __future__ import annotations

import pytest

from remote_sep.errors import ConfigError, NotProvisioned, RemoteSepError
from remote_sep.hosts.profile import HostProfile
from remote_sep.provision.inspect import parse_facts
from remote_sep.provision.plan import (
    DEFAULT_SAM_AUDIO_SPEC,
    SAM_AUDIO_COMMIT,
    build_plan,
    check_sam_audio_spec,
    merge_pins,
    model_repo,
)
from remote_sep.provision.stamp import check_stamp, stamp_matches, stamp_record
from remote_sep.provision.torch_index import WHEEL_TABLE, choose_torch

FACTS = """\
base=/srv/remote sep
hf_home=/home/u/.cache/huggingface
os=Linux x86_64
distro=Ubuntu 24.04 LTS
uid=1000
sudo=yes
apt=yes
python=/usr/bin/python3.10 3.10
python=/usr/bin/python3.12 3.12
disk_free_kb=104857600
nvsmi=yes
cuda=12.8
gpu=NVIDIA L4, 8.9, 570.86.10, 23034, 1
libavutil=libavutil.so.58
"""


@pytest.mark.parametrize(("cuda", "cc", "tag"), [
    ((12, 4), (8, 0), "cu124"), ((12, 5), (8, 0), "cu124"),
    ((12, 6), (8, 6), "cu126"), ((12, 7), (8, 6), "cu126"),
    ((12, 8), (8, 9), "cu128"), ((12, 9), (9, 0), "cu128"),
    ((13, 0), (9, 0), "cu130"), ((13, 1), (8, 0), "cu130"),
    ((12, 8), (12, 0), "cu128"),  # Blackwell RTX 50xx
    ((13, 0), (10, 0), "cu130"),  # Blackwell B200
    ((13, 0), (7, 0), "cu126"),  # Volta: newer wheels dropped sm_70
    ((12, 8), (6, 1), "cu126"),  # Pascal
    ((12, 2), (8, 0), "cu118"),
])
def test_wheel_table_rows(cuda, cc, tag):
    choice = choose_torch(cuda, cc)
    assert choice.tag == tag
    assert choice.index_url == f"https://download.pytorch.org/whl/{tag}"
    assert choice.with_torchcodec and choice.why


def test_blackwell_on_an_old_driver_says_update_the_driver():
    with pytest.raises(RemoteSepError) as err:
        choose_torch((12, 6), (12, 0))
    assert err.value.kind == "no_gpu" and "570" in err.value.hint


def test_too_old_driver_is_refused():
    with pytest.raises(RemoteSepError, match="11.8"):
        choose_torch((11, 4), (7, 5))


def test_table_is_newest_first_and_torch_family_versions_agree():
    assert [r.min_cuda for r in WHEEL_TABLE] == sorted((r.min_cuda for r in WHEEL_TABLE),
                                                       reverse=True)
    for row in WHEEL_TABLE:
        assert row.torch.split("==")[1] == row.torchaudio.split("==")[1]
        # torchvision 0.(minor + 15) pairs with torch 2.minor (pytorch/vision's table)
        torch_minor = int(row.torch.split("==")[1].split(".")[1])
        assert row.torchvision.startswith(f"torchvision==0.{torch_minor + 15}.")


def test_overrides_win_over_the_table():
    choice = choose_torch((12, 8), (8, 9), index_override="none", spec_override="torch==2.13.0")
    assert choice.index_url is None and choice.torch_packages == ("torch==2.13.0",)
    assert not choice.with_torchcodec and "overridden" in choice.why
    mirror = choose_torch((12, 8), (8, 9), index_override="https://mirror/whl/cu128")
    assert mirror.index_url == "https://mirror/whl/cu128"


def test_parse_facts():
    facts = parse_facts(FACTS)
    assert facts.base == "/srv/remote sep" and facts.python == "/usr/bin/python3.12"
    assert facts.cuda == (12, 8) and facts.gpus[0].compute_cap == (8, 9)
    assert facts.gpus[0].mem_total_mb == 23034 and facts.disk_free_gb == 100
    assert facts.ffmpeg_major == 6 and facts.has_sudo and not facts.is_root
    assert facts.stamp is None and not facts.low_disk()


def test_placeholder_sam_audio_is_refused():
    for spec in ("sam-audio", "sam_audio", "SAM_Audio==0.1.0", " sam-audio>=0 "):
        with pytest.raises(ConfigError, match="placeholder"):
            check_sam_audio_spec(spec)
    assert SAM_AUDIO_COMMIT in check_sam_audio_spec(DEFAULT_SAM_AUDIO_SPEC)
    assert check_sam_audio_spec("/opt/sam-audio") == "/opt/sam-audio"


def test_profile_pins_add_to_and_replace_defaults():
    pins = merge_pins(("huggingface_hub<1", "transformers<5"), ["numpy<2", "transformers<4.60"])
    assert pins == ["huggingface_hub<1", "transformers<4.60", "numpy<2"]


def test_model_names():
    assert model_repo("large") == "facebook/sam-audio-large"
    assert model_repo("me/my-sam") == "me/my-sam"
    with pytest.raises(RemoteSepError) as err:
        model_repo("huge")
    assert err.value.kind == "unknown_model"


def test_plan_order_commands_and_low_disk_warning():
    facts = parse_facts(FACTS.replace("disk_free_kb=104857600", "disk_free_kb=1048576"))
    plan = build_plan(facts, HostProfile(name="g", installer="pip"), model="base")
    names = [s.name for s in plan.steps]
    assert names == ["venv", "torch", "sam_audio", "payload_deps", "verify", "token", "gated"]
    torch_step = plan.steps[1].script
    assert "--index-url https://download.pytorch.org/whl/cu128" in torch_step
    assert "'/srv/remote sep/venv/bin/python' -m pip install" in torch_step
    assert "torchcodec==" in torch_step and "torchaudio==" in torch_step
    # sam_audio needs torchvision: from PyPI it would be built for another CUDA major
    assert "torchvision==" in torch_step
    sam = plan.steps[2].script
    assert "'huggingface_hub<1'" in sam and "'transformers<5'" in sam and SAM_AUDIO_COMMIT in sam
    assert plan.model_repo == "facebook/sam-audio-base"
    assert any("GB free" in w for w in plan.warnings)
    assert plan.blockers == []


def test_a_changed_step_changes_it_and_those_after_it_only():
    facts = parse_facts(FACTS)
    first = build_plan(facts, HostProfile(name="g"))
    second = build_plan(facts, HostProfile(name="g", sam_audio_spec="/opt/sam-audio"))
    keys = [(a.name, a.key == b.key) for a, b in zip(first.install_steps, second.install_steps,
                                                     strict=True)]
    assert keys == [("venv", True), ("torch", True), ("sam_audio", False),
                    ("payload_deps", False), ("verify", False)]
    assert first.plan_hash != second.plan_hash


def test_no_gpu_blocks_unless_cpu():
    facts = parse_facts("base=/b\nhf_home=/h\npython=/usr/bin/python3 3.11\n"
                        "libavutil=libavutil.so.57\n")
    plan = build_plan(facts, HostProfile(name="g"))
    assert plan.blockers and plan.blockers[0].kind == "no_gpu"
    cpu = build_plan(facts, HostProfile(name="g"), cpu=True)
    assert cpu.blockers == [] and cpu.torch.tag == "cpu"


def _commands_in(text: str) -> list[list[str]]:
    import re
    import shlex
    return [shlex.split(c) for c in re.findall(r"`(remote-sep [^`]+)`", text)]


def test_no_gpu_hints_name_commands_that_exist_and_the_why_agrees():
    """Every `remote-sep ...` in a no-GPU hint parses with the real CLI (no `--cpu` on a
    command that lacks it), and the plan's why line never claims --cpu was given."""
    import typer

    from remote_sep.cli.main import app

    root = typer.main.get_command(app)
    no_smi = parse_facts("base=/b\nhf_home=/h\npython=/usr/bin/python3 3.11\n"
                         "libavutil=libavutil.so.57\n")
    no_cuda = parse_facts("base=/b\nhf_home=/h\npython=/usr/bin/python3 3.11\nnvsmi=yes\n"
                          "libavutil=libavutil.so.57\n")
    for facts in (no_smi, no_cuda):
        plan = build_plan(facts, HostProfile(name="gpu1"))
        assert "(--cpu)" not in plan.torch.why and "pass --cpu" in plan.torch.why
        commands = _commands_in(plan.blockers[0].hint)
        assert commands == [["remote-sep", "bootstrap", "gpu1", "--cpu"]]
        for argv in commands:
            sub = root.get_command(None, argv[1])
            with sub.make_context(argv[1], argv[2:]) as sub_ctx:
                assert sub_ctx.params["cpu"] is True
    assert "(--cpu)" in build_plan(no_smi, HostProfile(name="g"), cpu=True).torch.why


def test_no_python_311_is_a_clear_error():
    with pytest.raises(RemoteSepError, match="3.11") as err:
        build_plan(parse_facts("base=/b\nhf_home=/h\npython=/usr/bin/python3 3.9\n"),
                   HostProfile(name="g"), cpu=True)
    assert err.value.kind == "not_provisioned"


def test_ffmpeg_missing_blocks_or_is_installed_with_sudo_when_allowed():
    facts = parse_facts(FACTS.replace("libavutil=libavutil.so.58\n", ""))
    plan = build_plan(facts, HostProfile(name="g"))
    assert plan.blockers and "apt-get install -y ffmpeg" in plan.blockers[0].hint
    allowed = build_plan(facts, HostProfile(name="g", allow_sudo=True))
    assert allowed.blockers == [] and allowed.steps[0].name == "ffmpeg"
    assert "sudo -n apt-get install" in allowed.steps[0].script and not allowed.steps[0].key
    ffmpeg8 = build_plan(parse_facts(FACTS.replace("so.58", "so.60")), HostProfile(name="g"))
    assert "FFmpeg 8" in ffmpeg8.blockers[0].message
    # No torchcodec in the plan (a profile's own torch spec): no FFmpeg needed.
    own = build_plan(facts, HostProfile(name="g", torch_spec="torch==2.13.0"))
    assert own.blockers == []


def test_stamp_matches_and_goes_stale_with_the_profile():
    facts = parse_facts(FACTS)
    profile = HostProfile(name="g")
    plan = build_plan(facts, profile)
    record = stamp_record(plan, {s.name: s.key for s in plan.install_steps}, True)
    assert stamp_matches(record, plan)
    check_stamp(profile, record)
    with pytest.raises(NotProvisioned, match="changed") as err:
        check_stamp(HostProfile(name="g", pins=["numpy<2"]), record)
    assert "remote-sep bootstrap g" in err.value.hint
    with pytest.raises(NotProvisioned, match="did not finish"):
        check_stamp(profile, {**record, "complete": False})
    with pytest.raises(NotProvisioned, match="not provisioned"):
        check_stamp(profile, None)
