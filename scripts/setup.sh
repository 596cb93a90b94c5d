#!/usr/bin/env bash
# Set up a fresh Debian / Raspberry Pi OS machine for Sentinel: system packages (when
# missing and we are root or have sudo), a virtualenv in .venv, the package itself.
#   scripts/setup.sh          what `sentinel demo` needs
#   scripts/setup.sh --test   plus what the test suite needs (browsers, brokers, OCR)
set -euo pipefail
cd "$(dirname "$0")/.."

# Runtime system libraries.
APT_RUNTIME=(libzbar0 fonts-ocr-b python3-venv)
# The kiosk's spoken prompts are made with espeak-ng here, offline (scripts/make_prompts.py);
# the kiosk font ships with the package (sentinel/web/static/fonts), so no CJK font package.
APT_SOUND=(espeak-ng)
# Test-only system packages (the browser, broker, database and OCR the tests really run).
APT_TEST=(chromium cage tesseract-ocr fonts-wqy-microhei shellcheck systemd mosquitto postgresql iso-codes fuse3 e2fsprogs openssl
  openssh-client mmdebstrap systemd-container)  # the last two: the real install on CI (tests/test_provision_real.py)

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

pkgs=("${APT_RUNTIME[@]}" "${APT_SOUND[@]}")
[ "$want_test" = 1 ] && pkgs+=("${APT_TEST[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # wait for another apt (unattended-upgrades on a first boot) instead of failing at once
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
extra=""
[ "$want_test" = 1 ] && extra="[test]"
echo "setup: installing Python packages into .venv${extra:+ (with test tools)}"
# pip's output goes to a log; shown only when the install fails
log=.venv/pip-install.log
if ! .venv/bin/python -m pip install -q -e ".${extra}" >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup: pip install failed (log above, also in $log)" >&2
  exit 1
fi
.venv/bin/python scripts/make_prompts.py
.venv/bin/python -c "import sentinel, pyzbar.pyzbar, cv2" \
  || { echo "setup: the virtualenv is incomplete" >&2; exit 1; }
