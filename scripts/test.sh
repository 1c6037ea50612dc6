#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs ruff and pytest.
# Usage: bash scripts/test.sh [pytest args…]
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null || missing+=(openssh-client)
command -v sox >/dev/null || missing+=(sox)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
ldconfig -p | grep -q libsndfile || missing+=(libsndfile1)
command -v pgrep >/dev/null || missing+=(procps)
# tests/faults/netns.py: network namespaces (ip netns) and packet drops (nft)
[ -x /usr/sbin/ip ] || command -v ip >/dev/null || missing+=(iproute2)
[ -x /usr/sbin/nft ] || missing+=(nftables)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# pip's own chatter goes to a log, shown only when the install fails.
pip_log=$(mktemp)
if ! .venv/bin/python -m pip install -q -e '.[test]' >"$pip_log" 2>&1; then
  cat "$pip_log"; exit 1
fi
rm -f "$pip_log"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q -rs "$@"
