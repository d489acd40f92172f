#!/usr/bin/env bash
# Installs kvpack's build and test dependencies from Debian 12 packages. Idempotent: packages
# already present are skipped, so `make run` / `make test` call it every time at no cost.
set -euo pipefail
pkgs=(
  cmake ninja-build g++ clang libclang-rt-14-dev clang-format pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev libhwy-dev libfmt-dev libcli11-dev
  nlohmann-json3-dev libxxhash-dev libcpp-httplib-dev libpcre2-dev
  python3-jinja2  # the reference renderer the chat template tests compare with
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null || true
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
