"""Many files over many hosts: plan, shared queue, resume state, per-host worker jobs, fleet."""
