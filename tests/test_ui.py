"""The progress view: state from events, rendering into a StringIO console (no terminal)."""

from __future__ import annotations

import io

from rich.console import Console

from remote_sep.cli.job_view import JobState, LiveView, render


def events() -> list[dict]:
    return [
        {"event": "hello", "t": 0.0, "gpu_name": "NVIDIA L4", "torch": "2.13.0"},
        {"event": "load", "t": 1.0, "model": "facebook/sam-audio-large", "dtype": "bf16",
         "seconds": 12.5},
        {"event": "item_start", "t": 100.0, "item": "i0", "desc": 0, "description": "vocals",
         "chunks": 4},
        {"event": "item_start", "t": 100.0, "item": "i0", "desc": 1, "description": "drums",
         "chunks": 4},
        {"event": "chunk", "t": 110.0, "item": "i0", "desc": 0, "done": 1, "total": 4},
        {"event": "warning", "t": 111.0, "item": None, "message": "OOM: halving the chunk"},
    ]


def text_of(state: JobState) -> str:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(render(state))
    return console.file.getvalue()


def test_state_tracks_outputs_and_eta_from_event_times():
    state = JobState()
    for event in events():
        state.apply("event", event)
    vocals, drums = state.outputs["i0/0"], state.outputs["i0/1"]
    assert (vocals.done, vocals.total, vocals.state) == (1, 4, "running")
    assert vocals.eta_s == 30.0  # 10 s per chunk, 3 to go
    assert drums.eta_s is None
    out = text_of(state)
    assert "NVIDIA L4" in out and "loaded in 12.5 s" in out
    assert "vocals" in out and "1/4" in out and "0:30" in out
    assert state.messages == ["warning: OOM: halving the chunk"]
    state.apply("event", {"event": "item_done", "t": 140.0, "item": "i0", "desc": 0})
    state.apply("event", {"event": "error", "item": "i0", "desc": 1, "kind": "oom",
                          "message": "too big"})
    assert (vocals.state, vocals.done, drums.state) == ("done", 4, "failed")
    assert "error (oom): too big" in state.messages


def test_transfer_progress_shows_then_clears():
    state = JobState()
    state.apply("transfer", {"name": "song.wav", "done": 50_000_000, "total": 200_000_000})
    assert "song.wav" in text_of(state) and " 25%" in text_of(state)
    state.apply("transfer", {"name": "song.wav", "done": 200_000_000, "total": 200_000_000})
    assert "song.wav" not in text_of(state)


def test_live_view_prints_messages_and_final_frame():
    console = Console(file=io.StringIO(), width=100, color_system=None)
    with LiveView(console) as view:
        view("status", {"message": "job j1 started on gpu"})
        for event in events():
            view("event", event)
        view("pulled", {"path": "/x/a_target.wav", "sha256": "00"})
    out = console.file.getvalue()
    assert "job j1 started on gpu" in out and "wrote /x/a_target.wav" in out
    assert out.endswith("\n") and "drums" in out


def test_a_ray_driver_is_shown_as_its_cluster_without_a_torch_version():
    state = JobState()
    state.apply("event", {"event": "hello", "t": 0.0, "device": "ray", "torch": None,
                          "gpu_name": "Ray cluster: 4 GPU actor(s) on 2 node(s)"})
    assert state.header["device"] == "Ray cluster: 4 GPU actor(s) on 2 node(s)"
    assert "torch None" not in text_of(state)
