#!/usr/bin/env bash
# Installs kvpack's build and test dependencies from Debian 12 packages. Idempotent: packages
# already present are skipped, so `make run` / `make test` call it every time at no cost.
set -euo pipefail
pkgs=(
  cmake ninja-build g++ clang libclang-rt-14-dev clang-format pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev libhwy-dev libfmt-dev libcli11-dev
  nlohmann-json3-dev libxxhash-dev libcpp-httplib-dev libpcre2-dev
  curl nodejs prometheus wrk
  python3-jinja2  # the reference renderer the chat template tests compare with
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm ships inside some nodejs builds (NodeSource's); Debian packages it apart.
command -v npm >/dev/null || missing+=(npm)
# The serve tests' OpenAI client (tests/serve/client), pinned by its package-lock.json.
install_node_client() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/serve/client"
  if [[ ! -d $dir/node_modules/openai ]]; then
    echo "install-deps: npm ci in tests/serve/client" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}
if ((${#missing[@]} == 0)); then
  install_node_client
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null || true
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
install_node_client
