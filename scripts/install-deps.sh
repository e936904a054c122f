#!/usr/bin/env bash
# Installs the Debian packages larder needs to build and run (and, with --test, to run its test
# suite). Installs only what is missing, so it is quick on a machine that has them.
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libuv1-dev libc-ares-dev liblmdb-dev libssl-dev node-llhttp)
test_pkgs=(python3 python3-pytest curl wget clang libclang-rt-14-dev procps iproute2 chromium)

pkgs=("${build_pkgs[@]}")
if [[ "${1:-}" == "--test" ]]; then
    pkgs+=("${test_pkgs[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
echo "installing: ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
    sudo_cmd=(sudo)
fi
"${sudo_cmd[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
