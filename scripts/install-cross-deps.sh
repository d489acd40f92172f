#!/usr/bin/env bash
# The cross toolchain for .ci/run's aarch64 stage (cmake/aarch64-linux-gnu.cmake): Debian's
# g++-aarch64-linux-gnu, qemu-user to run the test binaries, and the arm64 builds of kvpack's
# library dependencies through dpkg multiarch. Idempotent: does nothing when all are present.
set -euo pipefail
host=(g++-aarch64-linux-gnu qemu-user)
arm64=(libhwy-dev libfmt-dev libgtest-dev libgmock-dev libxxhash-dev libpcre2-dev
       libcpp-httplib-dev)
missing=()
for p in "${host[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
for p in "${arm64[@]}"; do
  dpkg-query -W -f='${Status}' "$p:arm64" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p:arm64")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "install-cross-deps: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo dpkg --add-architecture arm64
fi
$sudo apt-get update -q >/dev/null || true
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
