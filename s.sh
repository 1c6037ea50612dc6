E=/tmp/beattest/ev; H=/tmp/beattest/hb
beat() {
  while :; do
    touch "$H" 3>&-
    printf '\000' >&3 || exit 0
    sleep 0.5 3>&-
  done
}
beat 3>&1 >/dev/null 2>&1 &
B=$!
tail -c +1 --pid=16057 -s 0.1 -f "$E"
kill $B 2>/dev/null
exit 0
