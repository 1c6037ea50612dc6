"""A Ray cluster made of SSH hosts: `cluster up / status / down` (docs/ray.md).

`commands` (the remote scripts and what their answers mean: pure), `node_script` (the
scoped find/stop of one host's Ray processes, run there), `nodes` (one host over the SSH
seam: ready, probed, token, ray start/stop), `ops` (up/status/down over the hosts).
"""
