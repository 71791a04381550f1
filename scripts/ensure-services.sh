#!/usr/bin/env bash
# Makes sure what the tests and the demo need is on this machine: OpenSSH's sshd (the simulated
# jumphost is a real sshd on 127.0.0.1), with --redis Redis on 127.0.0.1:6379, and with --chromium
# Debian's headless Chromium at /usr/bin/chromium and a colour emoji font (the playground's browser test
# drives it; nothing ever downloads a browser of its own).
# Idempotent and quiet when everything is there. Usage: ensure-services.sh [--redis] [--chromium]
set -euo pipefail

want_redis=false
want_chromium=false
for arg in "$@"; do
  case "$arg" in
    --redis) want_redis=true ;;
    --chromium) want_chromium=true ;;
    *) echo "usage: ensure-services.sh [--redis] [--chromium] (unknown: $arg)" >&2; exit 2 ;;
  esac
done

install_packages() {
  if [ "$(id -u)" != 0 ]; then
    echo "capi-chatops: missing $* -- install it (e.g. sudo apt-get install -y $*) and run again" >&2
    exit 1
  fi
  echo "capi-chatops: installing $*" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if $want_redis && ! command -v redis-server >/dev/null 2>&1; then need+=(redis-server); fi
# fonts-liberation: without any font package Chromium draws the page's text as empty boxes.
if $want_chromium && [ ! -x /usr/bin/chromium ]; then need+=(chromium fonts-liberation); fi
# The playground shows Slack's emoji as Unicode characters: without a colour emoji font they are boxes.
if $want_chromium && [ ! -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; then need+=(fonts-noto-color-emoji); fi
[ ${#need[@]} -eq 0 ] || install_packages "${need[@]}"

if $want_redis && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "capi-chatops: starting redis-server on 127.0.0.1:6379" >&2
  mkdir -p /tmp/capi-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/capi-redis --logfile /tmp/capi-redis/redis.log
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && exit 0; sleep 0.1; done
  echo "capi-chatops: redis-server did not answer; see /tmp/capi-redis/redis.log" >&2
  exit 1
fi
