#!/usr/bin/env bash
# Debian packages the tests and benchmarks drive for real. Used by .ci/run and `make bench`.
# Installs only what is missing; needs root (or sudo) when something is.
set -euo pipefail
PACKAGES=(make python3 python3-venv python3-dev gcc binutils containerd runc busybox-static
          iproute2 prometheus prometheus-node-exporter prometheus-pushgateway chromium fonts-dejavu-core
          victoria-metrics containernetworking-plugins)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
