"""The Python run on a cluster host (with the profile's interpreter and environment) to find
or stop this cluster's Ray processes there, scoped the way `ray stop` is not.

`ray stop` ends every Ray process it can signal on the machine (another cluster of the same
user, or every user's as root). This ends only the SSH user's processes that belong to the
cluster: those whose environment names this host's token file (`cluster up` exports
RAY_AUTH_TOKEN_PATH=P/ray/auth_token to `ray start`; every Ray daemon inherits it), and their
children (Ray's `ray::` workers). Linux /proc only.
Run as: python -c NODE_SNIPPET probe|stop TOKEN_PATH
"""

from __future__ import annotations

NODE_SNIPPET = r'''
import json, os, signal, sys, time
action, token_path = sys.argv[1], sys.argv[2]
marker = b"RAY_AUTH_TOKEN_PATH=" + token_path.encode()
me, uid = os.getpid(), os.getuid()
# gcs_server, raylet and their agents can take over 10 s to leave on TERM (each waits on the
# others, all stopping at once): the whole node goes, so KILL what is left after 3 s.
TERM_GRACE_S = 3.0

def table():
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            if os.stat("/proc/" + name).st_uid != uid:
                continue
            with open("/proc/%s/cmdline" % name, "rb") as f:
                argv = f.read().split(b"\0")
            with open("/proc/%s/stat" % name) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%s/environ" % name, "rb") as f:
                mine = marker in f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        procs[int(name)] = (ppid, [a.decode("utf-8", "replace") for a in argv if a], mine)
    return procs

def ancestors(procs):
    """This process's parents: the shell that ran it has the same environment."""
    seen, pid = set(), os.getppid()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        pid = procs[pid][0] if pid in procs else 0
    return seen

def ours(procs):
    mine_up = ancestors(procs)
    found = {pid for pid, (_, _, mine) in procs.items() if mine and pid not in mine_up}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _, _) in procs.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found

def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False

procs = table()
found = ours(procs)
if action == "probe":
    raylet = [p for p in found if procs[p][1] and os.path.basename(procs[p][1][0]) == "raylet"]
    gcs = [a.split("=", 1)[1] for p in raylet for a in procs[p][1]
           if a.startswith(("--gcs-address=", "--gcs_address="))]
    print(json.dumps({"running": bool(raylet), "gcs": gcs[0] if gcs else None,
                      "processes": len(found)}))
    sys.exit(0)
for sig, wait in ((signal.SIGTERM, TERM_GRACE_S), (signal.SIGKILL, 5.0)):
    for pid in found:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        left = {p for p in found if alive(p)}
        if not left:
            break
        time.sleep(0.1)
    found = left
print(json.dumps({"stopped": True, "left": sorted(found)}))
'''
