#!/usr/bin/env bash
# The end-to-end tests look at the Prefect UI in a headless browser: Debian's chromium.
# Installs it when missing (root, or sudo); a machine that has it is left alone.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo"
echo "installing Debian's chromium for the UI tests (tests/e2e/browser.sh)" >&2
$as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq chromium >/dev/null
