#!/usr/bin/env bash
# What the end-to-end tests need from Debian: chromium (they screenshot the Prefect UI), postgresql
# (the production server's database) and redis-server (stage locks shared by several hosts). The
# tests start and stop each themselves, on 127.0.0.1; the S3 server (moto) comes with `.[dev]`.
# Installs what is missing (as root, or through sudo); a machine that has them is left alone.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo"
echo "installing Debian's ${missing[*]} for the end-to-end tests (tests/e2e/debian-packages.sh)" >&2
$as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq "${missing[@]}" >/dev/null
