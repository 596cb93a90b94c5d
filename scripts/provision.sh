#!/usr/bin/env bash
# Provision a Sentinel device: from a fresh Raspberry Pi OS (Bookworm+) / Debian 12 system
# to a running, hardened service.  Idempotent: a second run reports "no changes".
#
#   sudo scripts/provision.sh --venue ID --gate ID [options]
#   sudo scripts/provision.sh --answers /path/answers.conf
#   scripts/provision.sh --root /tmp/img --venue demo --gate g1      # into a directory tree
#   scripts/provision.sh --dry-run --venue demo --gate g1             # print, change nothing
#
# Options (each also a "key = value" line in the answers file, e.g. "venue = hall-a"):
#   --venue ID                  venue id (required)
#   --gate ID                   gate id (required)
#   --publisher-url URL         where signed bundles are published (default: a local demo
#                               publisher created under /var/lib/sentinel-demo-publisher)
#   --root-key-fingerprint HEX  SHA-256 fingerprint of the authority root key to pin
#   --root-key FILE             the authority root public key (PEM); default: fetched from
#                               PUBLISHER_URL/root_pub.pem and checked against the fingerprint
#   --lock-type TYPE            fail-secure (default) or fail-safe
#   --pin-map MAP               BCM pins, default relay=17,green=22,red=27,buzzer=23
#                               (also door=N, exit=N)
#   --relay-active-low          the relay board energises on a low level
#   --pin-factory NAME          lgpio (default on a Raspberry Pi) or mock
#   --retention-days N          days personal display data is kept (default 14)
#   --camera SOURCE             camera.source (default "0"; "picamera2" for a CSI module)
#   --kiosk                     also enable the kiosk browser unit
#   --enroll-url URL            POST the device's enrollment request there
#   --boot-config FILE          boot config to merge into (default: /boot/firmware/config.txt,
#                               else /boot/config.txt; skipped when neither exists)
#   --root DIR                  install into DIR instead of /: no packages, users or services
#                               of the host are touched; owners are applied only when the
#                               tree's own /etc/passwd knows the user, and always recorded
#   --venv-from DIR             (development, tests) link /opt/sentinel/venv to an existing
#                               virtualenv with sentinel installed instead of building one
#   --dry-run                   print what would be done, change nothing
#   --uninstall                 remove what provisioning installed (units, venv, links,
#                               udev rule, boot-config block); keeps the data, the
#                               settings and the service user (scripts/provision-uninstall.sh)
#   --purge-data                with --uninstall: crypto-shred the data too (keys first)
#   --answers FILE              read the options above from FILE (command line wins)
set -euo pipefail
umask 022

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROG="provision"

# ---------------------------------------------------------------------------- options
VENUE="" GATE="" PUBLISHER_URL="" ROOT_KEY_FPR="" ROOT_KEY_FILE="" LOCK_TYPE="fail-secure"
DEMO_RENEWED=0  # set when an older release's demo publisher is replaced (step 5)
PIN_MAP="relay=17,green=22,red=27,buzzer=23" RELAY_ACTIVE_HIGH="yes" PIN_FACTORY=""
RETENTION_DAYS="14" CAMERA="0" KIOSK="no" ENROLL_URL="" BOOT_CONFIG="" ROOT="/"
VENV_FROM="" DRY_RUN=0 ANSWERS="" UNINSTALL=0 PURGE_DATA=""

die() { echo "$PROG: error: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

set_opt() {  # set_opt KEY VALUE  (shared by the command line and the answers file)
  case "$1" in
    venue) VENUE="$2" ;;
    gate) GATE="$2" ;;
    publisher-url | publisher_url) PUBLISHER_URL="$2" ;;
    root-key-fingerprint | root_key_fingerprint) ROOT_KEY_FPR="$2" ;;
    root-key | root_key) ROOT_KEY_FILE="$2" ;;
    lock-type | lock_type) LOCK_TYPE="$2" ;;
    pin-map | pin_map) PIN_MAP="$2" ;;
    relay-active-high | relay_active_high) RELAY_ACTIVE_HIGH="$2" ;;
    pin-factory | pin_factory) PIN_FACTORY="$2" ;;
    retention-days | retention_days) RETENTION_DAYS="$2" ;;
    camera) CAMERA="$2" ;;
    kiosk) KIOSK="$2" ;;
    enroll-url | enroll_url) ENROLL_URL="$2" ;;
    boot-config | boot_config) BOOT_CONFIG="$2" ;;
    *) die "unknown option or answers key '$1' (see --help)" ;;
  esac
}

read_answers() {  # "key = value" lines; '#' comments.  Parsed, never sourced.
  local file="$1" line key value n=0
  [ -r "$file" ] || die "answers file $file: not readable"
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line="${line%%#*}"
    [[ "$line" =~ ^[[:space:]]*$ ]] && continue
    [[ "$line" =~ ^[[:space:]]*([a-z_-]+)[[:space:]]*=[[:space:]]*(.*[^[:space:]])?[[:space:]]*$ ]] \
      || die "answers file $file:$n: expected 'key = value'"
    key="${BASH_REMATCH[1]}" value="${BASH_REMATCH[2]:-}"
    value="${value#\"}" value="${value%\"}"
    set_opt "$key" "$value"
  done <"$file"
}

# The answers file first, so that command-line options override it.
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --answers) ANSWERS="${args[$((i + 1))]:-}" ;;
    --answers=*) ANSWERS="${args[$i]#--answers=}" ;;
  esac
done
[ -n "$ANSWERS" ] && read_answers "$ANSWERS"

while [ $# -gt 0 ]; do
  opt="$1"
  case "$opt" in
    -h | --help) usage; exit 0 ;;
    --dry-run) DRY_RUN=1; shift; continue ;;
    --uninstall) UNINSTALL=1; shift; continue ;;
    --purge-data) PURGE_DATA=1; shift; continue ;;
    --kiosk) KIOSK="yes"; shift; continue ;;
    --relay-active-low) RELAY_ACTIVE_HIGH="no"; shift; continue ;;
    --*=*) val="${opt#*=}"; opt="${opt%%=*}"; shift ;;
    --*) [ $# -ge 2 ] || die "$opt needs a value"; val="$2"; shift 2 ;;
    *) die "unexpected argument '$opt' (see --help)" ;;
  esac
  case "$opt" in
    --answers) ;;
    --root) ROOT="$val" ;;
    --venv-from) VENV_FROM="$val" ;;
    *) set_opt "${opt#--}" "$val" ;;
  esac
done

# ---------------------------------------------------------------------------- checks
if [ -n "$PURGE_DATA" ] && [ "$UNINSTALL" = 0 ]; then die "--purge-data goes with --uninstall"; fi
if [ "$UNINSTALL" = 1 ]; then VENUE="${VENUE:-none}" GATE="${GATE:-none}"; fi  # not needed
ID_RE='^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'
[ -n "$VENUE" ] || die "--venue is required"
[ -n "$GATE" ] || die "--gate is required"
[[ "$VENUE" =~ $ID_RE ]] || die "venue '$VENUE': use letters, digits, '.', '_', '-' (max 64)"
[[ "$GATE" =~ $ID_RE ]] || die "gate '$GATE': use letters, digits, '.', '_', '-' (max 64)"
URL_RE='^https?://[^[:space:]"\\]+$'
[ -z "$PUBLISHER_URL" ] || [[ "$PUBLISHER_URL" =~ $URL_RE ]] \
  || die "publisher URL '$PUBLISHER_URL': expected http(s)://host/path"
[ -z "$ENROLL_URL" ] || [[ "$ENROLL_URL" =~ $URL_RE ]] \
  || die "enroll URL '$ENROLL_URL': expected http(s)://host/path"
ROOT_KEY_FPR="$(printf '%s' "${ROOT_KEY_FPR#sha256:}" | tr -d ':' | tr 'A-F' 'a-f')"
[ -z "$ROOT_KEY_FPR" ] || [[ "$ROOT_KEY_FPR" =~ ^[0-9a-f]{64}$ ]] \
  || die "root key fingerprint: expected 64 hex digits (SHA-256)"
[ -z "$ROOT_KEY_FILE" ] || [ -r "$ROOT_KEY_FILE" ] || die "root key $ROOT_KEY_FILE: not readable"
if [ -n "$PUBLISHER_URL" ] && [ -z "$ROOT_KEY_FPR" ]; then
  die "--publisher-url needs --root-key-fingerprint (the key to pin is never taken on trust)"
fi
case "$LOCK_TYPE" in fail-secure | fail-safe) ;; *) die "lock type: fail-secure or fail-safe" ;; esac
case "$RELAY_ACTIVE_HIGH" in yes | true | 1) RELAY_ACTIVE_HIGH=yes ;; no | false | 0) RELAY_ACTIVE_HIGH=no ;;
  *) die "relay_active_high: yes or no" ;; esac
case "$KIOSK" in yes | true | 1) KIOSK=yes ;; no | false | 0) KIOSK=no ;; *) die "kiosk: yes or no" ;; esac
[[ "$RETENTION_DAYS" =~ ^[1-9][0-9]{0,3}$ ]] || die "retention days: a whole number 1..9999"
[[ "$CAMERA" =~ ^[A-Za-z0-9._/:-]+$ ]] || die "camera source '$CAMERA': unexpected characters"

declare -A PIN=([relay]=17 [green]=22 [red]=27 [buzzer]=23 [door]="" [exit]="")
IFS=',' read -r -a pin_items <<<"$PIN_MAP"
for item in "${pin_items[@]}"; do
  [[ "$item" =~ ^[[:space:]]*(relay|green|red|buzzer|door|exit)=([0-9]{1,2})[[:space:]]*$ ]] \
    || die "pin map item '$item': expected NAME=BCM (names: relay green red buzzer door exit)"
  ((10#${BASH_REMATCH[2]} <= 27)) || die "pin map item '$item': BCM pins are 0..27"
  PIN[${BASH_REMATCH[1]}]="$((10#${BASH_REMATCH[2]}))"
done
used_pins="$(for k in "${!PIN[@]}"; do [ -n "${PIN[$k]}" ] && echo "${PIN[$k]}"; done | sort | uniq -d)"
[ -z "$used_pins" ] || die "pin map: pin(s) used twice: $(echo "$used_pins" | tr '\n' ' ')"

[ -n "$ROOT" ] || die "--root needs a directory"
[[ "$ROOT" =~ ^[A-Za-z0-9._/+-]+$ ]] || die "--root '$ROOT': unexpected characters"
if [ "$ROOT" != "/" ]; then
  [ "$DRY_RUN" = 1 ] || mkdir -p -- "$ROOT" || die "cannot create $ROOT"
  [ -d "$ROOT" ] && ROOT="$(cd "$ROOT" && pwd)"
fi
R="${ROOT%/}"      # prefix for paths in the tree ("" for /)
ON_HOST=0          # 1: installing into the running system (packages, users, services)
[ "$ROOT" = "/" ] && ON_HOST=1
if [ "$ON_HOST" = 1 ] && [ "$DRY_RUN" = 0 ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo), or use --root DIR / --dry-run"
fi
if [ -z "$PIN_FACTORY" ]; then
  PIN_FACTORY=mock
  if [ "$ON_HOST" = 1 ] && grep -qs "Raspberry Pi" /proc/device-tree/model; then PIN_FACTORY=lgpio; fi
fi
case "$PIN_FACTORY" in mock | lgpio) ;; *) die "pin factory: lgpio or mock" ;; esac
if [ -n "$VENV_FROM" ]; then
  [ -x "$VENV_FROM/bin/python" ] || die "--venv-from $VENV_FROM: no bin/python there"
  VENV_FROM="$(cd "$VENV_FROM" && pwd)"
fi

# ---------------------------------------------------------------------------- helpers
CHANGES=0
WORK="$(mktemp -d)"
chmod 0755 "$WORK"   # the service user reads the generated settings from here
trap 'rm -rf -- "$WORK"' EXIT
: >"$WORK/record"

say() { printf '  %-8s %s\n' "$1" "$2"; }
changed() { CHANGES=$((CHANGES + 1)); say "changed" "$1"; }
would() { CHANGES=$((CHANGES + 1)); say "would" "$1"; }
step() { printf '%s: %s\n' "$PROG" "$1"; }

uid_of() {  # uid_of USER: numeric uid in the target system, empty when unknown
  if [ "$ON_HOST" = 1 ]; then id -u "$1" 2>/dev/null || true
  elif [ -r "$R/etc/passwd" ]; then awk -F: -v u="$1" '$1 == u { print $3; exit }' "$R/etc/passwd"
  fi
}
gid_of() {
  if [ "$ON_HOST" = 1 ]; then getent group "$1" | cut -d: -f3 || true
  elif [ -r "$R/etc/group" ]; then awk -F: -v g="$1" '$1 == g { print $3; exit }' "$R/etc/group"
  fi
}

set_attrs() {  # set_attrs PATH MODE OWNER:GROUP -- mode always; owner when resolvable
  local path="$1" mode owner="${3%%:*}" group="${3##*:}" uid gid
  mode="$(printf '%04o' "$((8#$2))")"
  echo "$mode ${3} ${path#"$R"}" >>"$WORK/record"
  [ "$DRY_RUN" = 1 ] && return 0
  if [ "$(stat -c %04a "$path")" != "$mode" ]; then
    chmod "$mode" "$path"
    changed "mode $mode ${path#"$R"}"
  fi
  [ "$(id -u)" -eq 0 ] || return 0
  uid="$(uid_of "$owner")" gid="$(gid_of "$group")"
  [ -n "$uid" ] && [ -n "$gid" ] || return 0
  if [ "$(stat -c %u:%g "$path")" != "$uid:$gid" ]; then
    chown "$uid:$gid" "$path"
    changed "owner $3 ${path#"$R"}"
  fi
}

ensure_dir() {  # ensure_dir TARGET_PATH MODE OWNER:GROUP
  local d="$R$1"
  if [ ! -d "$d" ]; then
    if [ "$DRY_RUN" = 1 ]; then would "create directory $1 ($2 $3)"; echo "$2 $3 $1/" >>"$WORK/record"; return; fi
    mkdir -p -- "$d"
    changed "create directory $1"
  fi
  set_attrs "$d" "$2" "$3"
}

put_file() {  # put_file SRC TARGET_PATH MODE OWNER:GROUP -- atomic, only when different
  local src="$1" dest="$R$2" tmp
  if [ -f "$dest" ] && cmp -s -- "$src" "$dest"; then
    set_attrs "$dest" "$3" "$4"
    return
  fi
  if [ "$DRY_RUN" = 1 ]; then
    if [ -f "$dest" ]; then would "update $2 ($3 $4)"; else would "write $2 ($3 $4)"; fi
    echo "$3 $4 $2" >>"$WORK/record"
    return
  fi
  mkdir -p -- "$(dirname -- "$dest")"
  tmp="$(mktemp "$(dirname -- "$dest")/.provision.XXXXXX")"
  cat -- "$src" >"$tmp"
  chmod "$3" "$tmp"
  sync -- "$tmp" 2>/dev/null || true
  [ -f "$dest" ] && cp -p -- "$dest" "$dest.prev"   # keep the replaced version for a diff
  mv -f -- "$tmp" "$dest"
  changed "write $2"
  set_attrs "$dest" "$3" "$4"
}

put_text() {  # put_text TARGET_PATH MODE OWNER:GROUP <<<content
  local tmp
  tmp="$(mktemp "$WORK/text.XXXXXX")"
  cat >"$tmp"
  put_file "$tmp" "$1" "$2" "$3"
}

put_link() {  # put_link TARGET_PATH LINK_TARGET
  local dest="$R$1"
  if [ -L "$dest" ] && [ "$(readlink -- "$dest")" = "$2" ]; then return; fi
  [ -e "$dest" ] && [ ! -L "$dest" ] && die "$1 exists and is not a symlink; move it away first"
  if [ "$DRY_RUN" = 1 ]; then would "link $1 -> $2"; return; fi
  mkdir -p -- "$(dirname -- "$dest")"
  ln -sfn -- "$2" "$dest"
  changed "link $1 -> $2"
}

run() {  # run CMD...: run it, or print it in a dry run
  if [ "$DRY_RUN" = 1 ]; then say "would" "run: $*"; CHANGES=$((CHANGES + 1)); return 0; fi
  "$@"
}

# ---------------------------------------------------------------------------- plan
if [ "$DRY_RUN" = 1 ]; then step "dry run: nothing will be changed"; fi

VENV=/opt/sentinel/venv
VPY="$R$VENV/bin/python"
DATA=/var/lib/sentinel
DEMO_PUB=/var/lib/sentinel-demo-publisher
SVC_USER=sentinel
BEGIN_MARK="# >>> sentinel: managed by scripts/provision.sh; edits inside this block are replaced >>>"
END_MARK="# <<< sentinel <<<"

if [ "$UNINSTALL" = 1 ]; then
  # shellcheck source=scripts/provision-uninstall.sh
  . "$SRC_DIR/scripts/provision-uninstall.sh"
  uninstall  # exits
fi
step "venue $VENUE, gate $GATE, into ${ROOT}, pins $PIN_FACTORY, lock $LOCK_TYPE"

# 1. System packages (the running system only).
step "system packages"
read -r -a apt_runtime <<<"$(sed -n 's/^APT_RUNTIME=(\(.*\))$/\1/p' "$SRC_DIR/scripts/setup.sh")"
[ "$KIOSK" = yes ] && apt_runtime+=(cage chromium espeak-ng fonts-wqy-microhei)   # kiosk unit; prompts; CJK fallback
if [ "$ON_HOST" = 0 ]; then
  say "skipped" "packages (--root: the host's packages are not touched): ${apt_runtime[*]}"
else
  missing=()
  for p in "${apt_runtime[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then say "ok" "packages ${apt_runtime[*]}"
  else
    # A fresh image may have no package lists yet (mmdebstrap, a minimal Debian): refresh
    # them first; only when something is missing, so a second run does not touch them.
    # A first boot runs unattended-upgrades: wait up to 10 min for its lock, not fail.
    run env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
    run env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
    [ "$DRY_RUN" = 1 ] || changed "installed ${missing[*]}"
  fi
fi

# 2. The service user and its groups.
step "service user"
if [ "$ON_HOST" = 0 ]; then
  if [ -n "$(uid_of "$SVC_USER")" ]; then say "ok" "user $SVC_USER exists in $R/etc/passwd"
  else say "skipped" "user $SVC_USER (--root: not created; owners are recorded in /opt/sentinel/provisioned-files.txt)"
  fi
else
  for g in video gpio; do
    getent group "$g" >/dev/null || { run groupadd --system "$g"; [ "$DRY_RUN" = 1 ] || changed "group $g"; }
  done
  if ! id -u "$SVC_USER" >/dev/null 2>&1; then
    run useradd --system --user-group --home-dir "$DATA" --no-create-home \
      --shell /usr/sbin/nologin --groups video,gpio --comment "Sentinel service" "$SVC_USER"
    [ "$DRY_RUN" = 1 ] || changed "user $SVC_USER"
  else
    for g in video gpio; do
      id -nG "$SVC_USER" | tr ' ' '\n' | grep -qx "$g" || { run usermod -a -G "$g" "$SVC_USER"; [ "$DRY_RUN" = 1 ] || changed "user $SVC_USER joins $g"; }
    done
  fi
  if [ "$KIOSK" = yes ]; then  # the kiosk browser's own account (systemd/sentinel-kiosk.service)
    for g in video render input audio; do
      getent group "$g" >/dev/null || { run groupadd --system "$g"; [ "$DRY_RUN" = 1 ] || changed "group $g"; }
    done
    if ! id -u sentinel-kiosk >/dev/null 2>&1; then
      run useradd --system --user-group --no-create-home --home-dir /run/sentinel-kiosk \
        --shell /usr/sbin/nologin --groups video,render,input,audio --comment "Sentinel kiosk" sentinel-kiosk
      [ "$DRY_RUN" = 1 ] || changed "user sentinel-kiosk"
    fi
  fi
fi

# 3. Directories.
step "directories"
ensure_dir /opt/sentinel 0755 root:root
ensure_dir /etc/sentinel 0750 root:$SVC_USER
ensure_dir $DATA 0700 $SVC_USER:$SVC_USER

# 4. The package in a virtualenv.
step "virtualenv $VENV"
if [ -n "$VENV_FROM" ]; then
  put_link $VENV "$VENV_FROM"
else
  [ -L "$R$VENV" ] && { run rm -f -- "$R$VENV"; }
  if [ ! -x "$VPY" ]; then
    run python3 -m venv "$R$VENV"
    [ "$DRY_RUN" = 1 ] || changed "create virtualenv $VENV"
  fi
  # The kiosk's spoken prompts (espeak-ng, offline), packaged from the source tree.
  [ "$KIOSK" = yes ] && [ "$DRY_RUN" = 0 ] && python3 "$SRC_DIR/scripts/make_prompts.py"
  src_hash="$(cd "$SRC_DIR" && find pyproject.toml sentinel -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)"
  extra=""
  [ "$PIN_FACTORY" = lgpio ] && extra="[pi]"
  stamp="$R$VENV/.sentinel-source"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$src_hash$extra" ]; then
    say "ok" "sentinel installed from this source ($src_hash)"
  else
    run "$VPY" -m pip install --quiet --no-cache-dir --disable-pip-version-check "$SRC_DIR$extra"
    if [ "$DRY_RUN" = 0 ]; then
      if [ "$ON_HOST" = 0 ]; then
        # The tree's venv lives at /opt/sentinel/venv on the target: fix the script headers.
        grep -rlF -- "$R$VENV" "$R$VENV/bin" | while IFS= read -r f; do
          sed -i "s#$R$VENV#$VENV#g" "$f"
        done
      fi
      printf '%s\n' "$src_hash$extra" >"$stamp"
      changed "install sentinel into $VENV"
    fi
  fi
fi
put_link /usr/local/bin/sentinel $VENV/bin/sentinel
for doc in "$SRC_DIR"/docs/*.md; do  # the units' Documentation= points here
  put_file "$doc" "/opt/sentinel/docs/$(basename "$doc")" 0644 root:root
done

# Commands run now, in this tree, use a copy of the config whose paths point into it.
sentinel_cmd() { "$VPY" -m sentinel "$@"; }
as_service_user() {  # on the running system, state files belong to the service user
  if [ "$ON_HOST" = 1 ] && [ "$(id -u)" -eq 0 ]; then runuser -u "$SVC_USER" -- "$@"; else "$@"; fi
}
have_command() {  # have_command NAME: does `sentinel --help` list it?
  [ "$DRY_RUN" = 0 ] && [ -x "$VPY" ] || return 1
  [ -f "$WORK/help" ] || sentinel_cmd --help >"$WORK/help" 2>/dev/null || true
  grep -qE "^    $1( |$)" "$WORK/help"
}

# 5. Authority root key: pinned by fingerprint (or the demo publisher's, created here once).
step "authority root key"
ROOT_KEY_PIN=""
if [ -n "$PUBLISHER_URL" ]; then
  if [ -z "$ROOT_KEY_FILE" ]; then
    ROOT_KEY_FILE="$WORK/root_key.pem"
    if [ "$DRY_RUN" = 1 ]; then say "would" "fetch ${PUBLISHER_URL%/}/root_pub.pem"
    else
      "$VPY" -c 'import sys, httpx
r = httpx.get(sys.argv[1], timeout=20, follow_redirects=True)
r.raise_for_status()
sys.stdout.buffer.write(r.content[:65536])' "${PUBLISHER_URL%/}/root_pub.pem" >"$ROOT_KEY_FILE" \
        || die "cannot fetch ${PUBLISHER_URL%/}/root_pub.pem"
    fi
  fi
  if [ "$DRY_RUN" = 1 ]; then say "would" "check the root key's SHA-256 fingerprint is $ROOT_KEY_FPR"
  elif [ -f "$ROOT_KEY_FILE" ] && [ -x "$VPY" ]; then
    got="$(sentinel_cmd enroll --fingerprint "$ROOT_KEY_FILE")" || die "$ROOT_KEY_FILE: not a public key"
    [ "$got" = "$ROOT_KEY_FPR" ] || die "root key fingerprint mismatch: expected $ROOT_KEY_FPR, got $got"
    say "ok" "root key fingerprint $got"
  fi
  put_file "$ROOT_KEY_FILE" /etc/sentinel/root_key.pem 0644 root:root
  ROOT_KEY_PIN=/etc/sentinel/root_key.pem
elif [ "$DRY_RUN" = 1 ]; then
  say "would" "create a local demo publisher in $DEMO_PUB (if sentinel publish exists) and pin its key"
elif have_command publish; then
  # Created once: a second run keeps the same demo authority (and its key) -- unless an
  # older release made it in a bundle format this one does not read (an upgrade): then it
  # is set aside and made anew, and the device's demo trust data with it (below).
  if [ -f "$R$DEMO_PUB/site/manifest.json" ] && ! "$VPY" -c 'import sys
from sentinel.trust import bundle as bm
with open(sys.argv[1], "rb") as f: raw = f.read(1 << 20)
sys.exit(1 if bm.is_older_format(bm.stored_format(raw)) else 0)' "$R$DEMO_PUB/site/manifest.json"; then
    rm -rf "$R$DEMO_PUB.old" && mv "$R$DEMO_PUB" "$R$DEMO_PUB.old"
    changed "demo publisher of an older bundle format set aside in $DEMO_PUB.old"
    DEMO_RENEWED=1
  fi
  if [ ! -f "$R$DEMO_PUB/root_pub.pem" ]; then
    sentinel_cmd publish demo --out "$R$DEMO_PUB" >"$WORK/publish.log" 2>&1 \
      || { cat "$WORK/publish.log" >&2; die "sentinel publish demo failed"; }
    chmod 0755 "$R$DEMO_PUB"
    changed "demo publisher in $DEMO_PUB (its private keys stay 0600 in there)"
  fi
  if [ -f "$R$DEMO_PUB/root_pub.pem" ]; then
    put_file "$R$DEMO_PUB/root_pub.pem" /etc/sentinel/root_key.pem 0644 root:root
    ROOT_KEY_PIN=/etc/sentinel/root_key.pem
  else
    say "skipped" "the demo publisher wrote no root_pub.pem; no root key pinned"
  fi
else
  say "skipped" "no --publisher-url and no 'sentinel publish' command: no root key pinned"
fi

# 6. The settings file.
step "settings /etc/sentinel/sentinel.toml"
relay_high=true; [ "$RELAY_ACTIVE_HIGH" = yes ] || relay_high=false
{
  echo "# Written by scripts/provision.sh; re-run it to change these answers (the"
  echo "# previous version is kept as sentinel.toml.prev).  Every key: sentinel/config.py."
  echo "data_dir = \"$DATA\""
  echo
  echo "[venue]"
  echo "id = \"$VENUE\""
  echo
  echo "[gate]"
  echo "id = \"$GATE\""
  echo "pin_factory = \"$PIN_FACTORY\""
  echo "lock_type = \"$LOCK_TYPE\""
  echo "relay_pin = ${PIN[relay]}"
  echo "relay_active_high = $relay_high"
  echo "green_led_pin = ${PIN[green]}"
  echo "red_led_pin = ${PIN[red]}"
  echo "buzzer_pin = ${PIN[buzzer]}"
  [ -n "${PIN[door]}" ] && echo "door_pin = ${PIN[door]}"
  [ -n "${PIN[exit]}" ] && echo "exit_pin = ${PIN[exit]}"
  echo
  echo "[camera]"
  echo "source = \"$CAMERA\""
  echo
  echo "[trust]"
  [ -n "$PUBLISHER_URL" ] && echo "publisher_url = \"$PUBLISHER_URL\""
  [ -n "$ROOT_KEY_PIN" ] && echo "root_key = \"$ROOT_KEY_PIN\""
  echo
  echo "[retention]"
  echo "retention_days = $RETENTION_DAYS"
  echo
  echo "# Kiosk and report pages on the device's loopback (systemd/sentinel-kiosk.service)."
  echo "[web]"
  echo "enabled = true"
  echo
  echo "[fleet]"
  echo "device_id = \"$VENUE.$GATE\""
} >"$WORK/sentinel.toml"
put_file "$WORK/sentinel.toml" /etc/sentinel/sentinel.toml 0640 root:$SVC_USER
# The same settings with paths into this tree, for the commands run below.
sed -e "s#\"/var/lib/#\"$R/var/lib/#" -e "s#\"/etc/sentinel/#\"$R/etc/sentinel/#" \
  "$WORK/sentinel.toml" >"$WORK/local.toml"
# (`sentinel enroll` below loads them: a setting the package rejects stops the run there.)

# 7. Device key and enrollment request.
step "device key"
if [ "$DRY_RUN" = 1 ]; then
  [ -f "$R$DATA/device_key.pem" ] || would "generate the device key $DATA/device_key.pem (0600)"
  would "write the enrollment request $DATA/enrollment.json (if changed)"
  echo "0600 $SVC_USER:$SVC_USER $DATA/device_key.pem" >>"$WORK/record"
  echo "0644 $SVC_USER:$SVC_USER $DATA/enrollment.json" >>"$WORK/record"
else
  [ -f "$R$DATA/device_key.pem" ] || changed "generate the device key $DATA/device_key.pem"
  before="$(sha256sum "$R$DATA/enrollment.json" 2>/dev/null || true)"
  enroll_args=(enroll --config "$WORK/local.toml" --out "$R$DATA/enrollment.json")
  [ -n "$ENROLL_URL" ] && enroll_args+=(--post "$ENROLL_URL")
  as_service_user "$VPY" -m sentinel "${enroll_args[@]}" >"$WORK/enroll.log" \
    || { cat "$WORK/enroll.log" >&2; die "sentinel enroll failed"; }
  [ "$before" = "$(sha256sum "$R$DATA/enrollment.json")" ] || changed "write $DATA/enrollment.json"
  set_attrs "$R$DATA/device_key.pem" 0600 $SVC_USER:$SVC_USER
  set_attrs "$R$DATA/enrollment.json" 0644 $SVC_USER:$SVC_USER
  say "ok" "$(grep -m1 'fingerprint' "$WORK/enroll.log" || echo "device key ready")"
fi

# 8. Boot config (Raspberry Pi firmware): one managed block, replaced in place.
step "boot config"
if [ -z "$BOOT_CONFIG" ]; then
  for c in /boot/firmware/config.txt /boot/config.txt; do
    if [ -f "$R$c" ] && ! grep -q "DO NOT EDIT THIS FILE" "$R$c"; then BOOT_CONFIG="$c"; break; fi
  done
fi
if [ -z "$BOOT_CONFIG" ] || [ ! -f "$R$BOOT_CONFIG" ]; then
  say "skipped" "no Raspberry Pi boot config (${BOOT_CONFIG:-/boot/firmware/config.txt}) in $ROOT"
else
  level=dl level_name=low
  [ "$RELAY_ACTIVE_HIGH" = yes ] || { level=dh; level_name=high; }
  begins="$(grep -cxF -- "$BEGIN_MARK" "$R$BOOT_CONFIG" || true)"
  ends="$(grep -cxF -- "$END_MARK" "$R$BOOT_CONFIG" || true)"
  [ "$begins" = "$ends" ] || die "$BOOT_CONFIG: unbalanced sentinel block markers; fix by hand"
  {
    awk -v b="$BEGIN_MARK" -v e="$END_MARK" '
      $0 == b { skip = 1; next }
      skip && $0 == e { skip = 0; next }
      skip { next }
      { line[++n] = $0 }
      END { while (n > 0 && line[n] ~ /^[[:space:]]*$/) n--; for (i = 1; i <= n; i++) print line[i] }
    ' "$R$BOOT_CONFIG"
    echo
    echo "$BEGIN_MARK"
    echo "# Applies to every board model, whatever conditional section precedes it."
    echo "[all]"
    indicators="${PIN[green]},${PIN[red]},${PIN[buzzer]}"
    inputs="$(printf '%s\n' "${PIN[door]}" "${PIN[exit]}" | grep . | paste -sd, || true)"
    for frag in "$SRC_DIR"/firmware_config/*.txt; do
      if [ -z "$inputs" ] && grep -q "@INPUT_PINS@" "$frag"; then continue; fi
      sed -e "s/@RELAY_PIN@/${PIN[relay]}/g" -e "s/@RELAY_LEVEL@/$level/g" \
        -e "s/@RELAY_LEVEL_NAME@/$level_name/g" -e "s/@INDICATOR_PINS@/$indicators/g" \
        -e "s/@INPUT_PINS@/$inputs/g" "$frag"
    done
    echo "$END_MARK"
  } >"$WORK/boot-config.txt"
  put_file "$WORK/boot-config.txt" "$BOOT_CONFIG" "$(stat -c %a "$R$BOOT_CONFIG")" root:root
fi

# 9. udev rules and the hardware watchdog setting.
step "udev rules, hardware watchdog"
rules_before="$(sha256sum "$R/etc/udev/rules.d/99-sentinel.rules" 2>/dev/null || true)"
put_file "$SRC_DIR/firmware_config/99-sentinel.rules" /etc/udev/rules.d/99-sentinel.rules 0644 root:root
put_file "$SRC_DIR/firmware_config/50-sentinel-watchdog.conf" \
  /etc/systemd/system.conf.d/50-sentinel-watchdog.conf 0644 root:root
if [ "$ON_HOST" = 1 ] && [ "$DRY_RUN" = 0 ] && [ -S /run/udev/control ] \
  && [ "$rules_before" != "$(sha256sum /etc/udev/rules.d/99-sentinel.rules)" ]; then
  if udevadm control --reload-rules; then
    udevadm trigger --action=change --subsystem-match=video4linux --subsystem-match=media \
      --subsystem-match=dma_heap --subsystem-match=gpio || say "warning" "udevadm trigger failed"
  fi
fi

# 10. systemd units.
step "systemd units"
units=()
unit_changes=$CHANGES
for u in "$SRC_DIR"/systemd/*.service "$SRC_DIR"/systemd/*.timer; do
  [ -f "$u" ] || continue
  units+=("$(basename "$u")")
  put_file "$u" "/etc/systemd/system/$(basename "$u")" 0644 root:root
done
unit_changes=$((CHANGES - unit_changes))
enable=(sentinel.service sentinel-purge.timer)
if [ -n "$PUBLISHER_URL" ]; then enable+=(sentinel-sync.timer)
else say "skipped" "sentinel-sync.timer not enabled: no --publisher-url (demo data is synced once, below)"
fi
[ "$KIOSK" = yes ] && enable+=(sentinel-kiosk.service)
BOOTED=0
[ "$ON_HOST" = 1 ] && [ -d /run/systemd/system ] && BOOTED=1
if [ "$BOOTED" = 1 ] && [ "$unit_changes" -gt 0 ]; then run systemctl daemon-reload; fi
for u in "${enable[@]}"; do
  if [ ! -f "$R/etc/systemd/system/$u" ]; then
    if [ "$DRY_RUN" = 1 ]; then would "enable $u"; else say "skipped" "$u: no such unit in systemd/"; fi
    continue
  fi
  if [ "$(systemctl --root="$ROOT" is-enabled "$u" 2>/dev/null || true)" = enabled ]; then
    say "ok" "$u enabled"
  else
    run systemctl --root="$ROOT" --quiet enable "$u"
    [ "$DRY_RUN" = 1 ] || changed "enable $u"
  fi
done

# 11. One sync, so the device starts with current data -- only the first time: once a
# bundle is applied the service and the timer keep it current, and a re-run must not
# rewrite trust/store.db (a sync records its attempt there even when nothing is new).
step "sync"
if [ "$DRY_RUN" = 1 ]; then say "would" "run: sentinel sync (when the command exists)"
elif ! have_command sync; then say "skipped" "this sentinel has no 'sync' command yet"
elif [ "$DEMO_RENEWED" = 0 ] && "$VPY" -c 'import sys; from sentinel.trust.store import BundleStore as B
sys.exit(0 if B.readable(sys.argv[1]) else 1)' "$R$DATA" 2>/dev/null; then
  say "ok" "a bundle is applied already (sentinel status shows it; the service keeps it current)"
elif [ "$DEMO_RENEWED" = 1 ] && [ -z "$PUBLISHER_URL" ]; then
  # The old demo authority's root is the one the device's store trusts: its demo trust
  # data goes (journal, keys and users stay), and the new demo authority's is synced.
  rm -rf "$R$DATA/trust"
  changed "demo trust data of the older demo publisher removed"
  as_service_user "$VPY" -m sentinel sync --config "$WORK/local.toml" --from "$R$DEMO_PUB/site" \
    || say "warning" "sync from the demo publisher failed (see above)"
elif [ -n "$PUBLISHER_URL" ]; then
  # none applied yet, or one in an older release's format (an upgrade): sync now, so the
  # service does not start without data it can read
  as_service_user "$VPY" -m sentinel sync --config "$WORK/local.toml" || say "warning" "sync failed (see above); the timer retries hourly"
elif [ -d "$R$DEMO_PUB/site" ]; then
  as_service_user "$VPY" -m sentinel sync --config "$WORK/local.toml" --from "$R$DEMO_PUB/site" \
    || say "warning" "sync from the demo publisher failed (see above)"
else
  say "skipped" "no publisher to sync from"
fi

# Ownership record (what the tree's files should be owned by on the device).
step "record"
sort -u -k3 "$WORK/record" >"$WORK/record.sorted"
{
  echo "# mode owner:group path -- written by scripts/provision.sh"
  cat "$WORK/record.sorted"
} | put_text /opt/sentinel/provisioned-files.txt 0644 root:root
if [ "$ON_HOST" = 0 ] && [ "$DRY_RUN" = 0 ] && [ -n "$(uid_of "$SVC_USER")" ] && [ "$(id -u)" -eq 0 ]; then
  # State written by the commands above belongs to the service user.
  find "$R$DATA" ! -user "$(uid_of "$SVC_USER")" -exec chown "$(uid_of "$SVC_USER"):$(gid_of "$SVC_USER")" {} +
fi

# 12. The self-test; its result is the script's result.  It needs the camera and pins,
# so on the running system the service is stopped for it and started afterwards.
step "selftest"
rc=0
if [ "$BOOTED" = 1 ] && [ "$DRY_RUN" = 0 ] && systemctl --quiet is-active sentinel.service; then
  run systemctl stop sentinel.service
fi
if [ "$DRY_RUN" = 1 ]; then say "would" "run: sentinel selftest (when the command exists)"
elif ! have_command selftest; then say "skipped" "this sentinel has no 'selftest' command yet"
elif [ "$ON_HOST" = 0 ]; then
  # Under --root the hardware checked would be this host's, not the device's: the result
  # is reported, not fatal; the relay is left alone.  Run it on the device to be sure.
  st=0
  sentinel_cmd selftest --config "$WORK/local.toml" --skip-relay || st=$?
  [ "$st" = 0 ] || say "note" "selftest exited $st here (--root: this host's camera and pins, not the device's)"
else
  as_service_user "$VPY" -m sentinel selftest --config "$WORK/local.toml" || rc=$?
  [ "$rc" = 0 ] || say "FAILED" "sentinel selftest exited $rc"
fi

# 13. Services: start on the running system (the next boot starts them otherwise).
if [ "$BOOTED" = 1 ]; then
  step "services"
  run systemctl start sentinel.service
  for u in "${enable[@]}"; do
    case "$u" in *.timer) run systemctl start "$u" ;; esac
  done
elif [ "$ON_HOST" = 1 ]; then
  say "skipped" "systemd is not running here: the units start at the next boot"
fi

if [ "$DRY_RUN" = 1 ]; then step "dry run: $CHANGES planned step(s)"
elif [ "$CHANGES" = 0 ]; then step "no changes"
else step "$CHANGES change(s)"
fi
exit "$rc"
