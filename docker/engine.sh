#!/usr/bin/env bash
# Makes sure a Docker engine answers. Where none runs (this kind of CI machine), installs
# Debian's docker.io and starts dockerd the only way allowed here: no bridge, no iptables,
# so every container uses the host's network. The engine is left running for later runs
# on the same machine (its images are the cache); its pid is in
# /run/sessionstorm-dockerd.pid, its log in /var/log/sessionstorm-dockerd.log.
set -euo pipefail
say() { echo "engine: $*" >&2; }
answers() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

answers && exit 0
if [ "$(id -u)" -ne 0 ]; then
  say "no Docker engine answers and starting one needs root; start one or set SESSIONSTORM_DOCKER=skip"
  exit 2
fi
if ! command -v dockerd >/dev/null; then
  say "installing docker.io (apt-get)"
  # The package's own service would start an engine with a bridge and iptables rules:
  # policy-rc.d keeps it from starting during the install (only ours runs).
  policy=/usr/sbin/policy-rc.d
  [ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; trap 'rm -f "$policy"' EXIT; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  answers && exit 0
fi
log=/var/log/sessionstorm-dockerd.log
say "starting dockerd --bridge=none --iptables=false --ip6tables=false (log: $log)"
setsid dockerd --bridge=none --iptables=false --ip6tables=false >"$log" 2>&1 < /dev/null &
echo $! > /run/sessionstorm-dockerd.pid
for _ in $(seq 1 120); do
  answers && { say "dockerd ready (pid $(cat /run/sessionstorm-dockerd.pid))"; exit 0; }
  kill -0 "$(cat /run/sessionstorm-dockerd.pid)" 2>/dev/null || break
  sleep 0.5
done
say "dockerd did not answer within 60 s; last log lines:"
tail -15 "$log" >&2
exit 1
