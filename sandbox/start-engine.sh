#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io (and debootstrap, which bootstraps
# a base image where no registry is reachable) and start dockerd in the background when none runs.
# Needs root for the install and the start; exits 1, saying why, when no engine can be had.
set -uo pipefail

answers() { docker info >/dev/null 2>&1; }

if answers; then
    echo "docker engine: already running"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "docker engine: none answers, and starting one needs root (sudo $0)" >&2
    exit 1
fi
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    echo "docker engine: installing docker.io and debootstrap from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null \
        || { echo "docker engine: apt-get install failed" >&2; exit 1; }
fi
log="${TMPDIR:-/tmp}/dockerd.log"
echo "docker engine: starting dockerd (log: $log)"
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 60); do
    answers && { echo "docker engine: running"; exit 0; }
    sleep 1
done
echo "docker engine: dockerd did not answer within 60 s; the end of its log:" >&2
tail -20 "$log" >&2
exit 1
