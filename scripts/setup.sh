#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian 12 machine for mcunet-tf.
# Installs the apt packages (Bazel offline, host gcc, arm-none-eabi toolchain, QEMU) and a
# virtual environment (.venv) with requirements.txt. Skips whatever is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${MCUNET_VENV:-$ROOT/.venv}
APT_PKGS=(bazel-bootstrap bazel-bootstrap-source gcc make gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)

say() { echo "[setup] $*"; }

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  say "apt: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "apt: all packages present"
fi

PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  say "venv: creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "pip: installing requirements.txt into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q --pre -r requirements.txt
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
else
  say "pip: requirements already installed"
fi
say "done"
