# Shell functions the load test scripts share; sourced, never run. The sourcing script defines
# `log MESSAGE` and `die MESSAGE` first.

# free_port VAR: sets VAR to a free loopback TCP port: nothing accepts on it, no socket in any
# TCP state holds it, and this script has not handed it out already. Ports are picked below the
# kernel's ephemeral range, so no outgoing connection (the tests' and benches' many short ones
# included) holds the port when the server binds it. It assigns instead of printing: a command
# substitution would run it in a subshell, which forgets the ports it handed out.
TAKEN_PORTS=" "
EPHEMERAL_LOW=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  # Locals named so no caller's VAR is shadowed by them.
  local free_port_p free_port_tries=0
  while :; do
    free_port_p=$(( 20000 + RANDOM % (EPHEMERAL_LOW > 21000 ? EPHEMERAL_LOW - 20000 : 1000) ))
    free_port_tries=$((free_port_tries + 1))
    [ "$free_port_tries" -lt 200 ] || die "no free loopback port found"
    case "$TAKEN_PORTS" in *" $free_port_p "*) continue ;; esac
    if ss -Htan "sport = :$free_port_p" 2>/dev/null | grep -q .; then continue; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$free_port_p") 2>/dev/null; then continue; fi
    TAKEN_PORTS="$TAKEN_PORTS$free_port_p "
    printf -v "$1" '%s' "$free_port_p"
    return
  done
}

# stop_proc PID NAME [SIGNAL]: stops one of our processes (a child of this shell) with SIGNAL
# (default TERM), waits up to 30 s, then SIGKILLs it. Returns non-zero when it had to be killed
# or exited with an error.
stop_proc() {
  local pid=$1 name=$2 sig=${3:-TERM} rc=0
  [ -n "$pid" ] || return 0
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || rc=$?
    log "$name had already exited (status $rc)"
    return 1
  fi
  kill -"$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 600); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    log "$name did not stop within 30 s of SIG$sig; killed it"
    return 1
  fi
  wait "$pid" 2>/dev/null || rc=$?
  [ "$rc" -eq 0 ] || { log "$name exited with status $rc on SIG$sig"; return 1; }
}
