#!/usr/bin/env bash
# Prove the installer for real: build (or reuse) a fresh Debian bookworm root with
# mmdebstrap, run scripts/provision.sh inside it exactly as an installer would (apt, user,
# settings, units, enable), then `sentinel selftest` and `sentinel demo` as the service
# user; run provisioning again and count what changed; boot the root with systemd as
# PID 1 (systemd-nspawn --boot) and check the service, its watchdog, SIGTERM, the timers,
# the sandbox and the hardening score; upgrade from an older release's data; uninstall.
#
#   sudo scripts/try-install.sh [--arch amd64|arm64] [--cache DIR] [--work DIR]
#                               [--old-rev REV] [--no-boot] [--no-upgrade] [--keep]
#
#   --arch ARCH     amd64 (the host's) or arm64 (a Pi 4/5, under qemu-user-static)
#   --cache DIR     where the pristine base roots are kept between runs
#                   (default /var/cache/sentinel-try-install)
#   --work DIR      scratch space for the roots under test (default /var/tmp/sentinel-try-install)
#   --old-rev REV   the previous release to upgrade from (default: the repo's
#                   scripts/previous-release file, else skip the upgrade stage)
#   --no-boot       stop after the chroot stages
#   --no-upgrade    skip the upgrade and uninstall stages (two more provisionings)
#   --keep          keep the roots under test (for a look inside)
#
# Needs root and: mmdebstrap, systemd-container (systemd-nspawn), and for arm64
# qemu-user-static with binfmt_misc.  It prints each stage's time and, as its LAST line:
#   install(<arch>): provisioned in <s> s, booted: <active|not booted: reason>,
#   watchdog restart <ok|failed|not booted>, second run changed <n> files
# (one line).  The exit code is 0 when every check that could run passed.
set -euo pipefail
umask 022

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARCH="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
CACHE=/var/cache/sentinel-try-install
WORKDIR=/var/tmp/sentinel-try-install
OLD_REV=""
BOOT=1 KEEP=0 NO_UPGRADE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH="${2:?}"; shift 2 ;;
    --cache) CACHE="${2:?}"; shift 2 ;;
    --work) WORKDIR="${2:?}"; shift 2 ;;
    --old-rev) OLD_REV="${2:?}"; shift 2 ;;
    --no-boot) BOOT=0; shift ;;
    --no-upgrade) NO_UPGRADE=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "try-install: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$ARCH" in amd64 | arm64) ;; *) echo "try-install: --arch amd64 or arm64" >&2; exit 2 ;; esac
[ -n "$OLD_REV" ] || OLD_REV="$(sed -n '1s/[[:space:]].*//p' "$SRC/scripts/previous-release" 2>/dev/null || true)"

PROVISIONED="" BOOTED="not booted: --no-boot" WATCHDOG="not booted" SECOND="?"
FAILS=()
summary() {
  echo "install($ARCH): provisioned in ${PROVISIONED:-?} s, booted: $BOOTED, watchdog restart $WATCHDOG, second run changed $SECOND files"
}
give_up() {  # give_up REASON: the environment cannot do this at all
  echo "try-install: $1" >&2
  PROVISIONED="${PROVISIONED:-not provisioned: $1}"
  summary
  exit 3
}
fail() { FAILS+=("$1"); echo "  FAIL     $1"; }
ok() { echo "  ok       $1"; }

[ "$(id -u)" -eq 0 ] || give_up "needs root (mmdebstrap, chroot, systemd-nspawn)"
for tool in mmdebstrap chroot; do
  command -v "$tool" >/dev/null || give_up "$tool not installed (apt-get install mmdebstrap)"
done
HOST_ARCH="$(dpkg --print-architecture)"
if [ "$ARCH" != "$HOST_ARCH" ]; then
  qemu="qemu-$( [ "$ARCH" = arm64 ] && echo aarch64 || echo x86_64)"
  [ -d /proc/sys/fs/binfmt_misc ] && [ -e /proc/sys/fs/binfmt_misc/status ] \
    || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  if [ ! -e "/proc/sys/fs/binfmt_misc/$qemu" ] && command -v update-binfmts >/dev/null; then
    update-binfmts --enable "$qemu" >/dev/null 2>&1 || true
  fi
  grep -qs '^flags: .*F' "/proc/sys/fs/binfmt_misc/$qemu" \
    || give_up "no binfmt_misc handler $qemu with the F flag (apt-get install qemu-user-static binfmt-support)"
fi

# ---------------------------------------------------------------------------- timing
T0=$(date +%s.%N)
stage_start=$T0
declare -a TIMES=()
stage() {  # stage NAME: close the previous stage, print the new one's header
  local now
  now=$(date +%s.%N)
  [ -n "${STAGE:-}" ] && TIMES+=("$(printf '%-28s %7s s' "$STAGE" "$(elapsed "$stage_start" "$now")")")
  STAGE="$1" stage_start=$now
  [ -n "$1" ] && echo "== $1"
  return 0
}
elapsed() { awk -v a="$1" -v b="${2:-$(date +%s.%N)}" 'BEGIN { printf "%.1f", b - a }'; }
secs_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }'; }

# ---------------------------------------------------------------------------- mounts
MOUNTED=() OVERLAYS=()
NSPAWN_PID=""
cleanup() {
  local m
  if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
    kill -TERM "$NSPAWN_PID" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$NSPAWN_PID" 2>/dev/null || true
    # A container whose nspawn was killed keeps its init (its PID namespace) alive: end
    # it too, if that pid is still the container's init (NSpid ... 1), not a reused one.
    if [ -n "${LEADER:-}" ] && [ "$(awk '/^NSpid:/ { print $NF }' "/proc/$LEADER/status" 2>/dev/null)" = 1 ]; then
      kill -KILL "$LEADER" 2>/dev/null || true
    fi
  fi
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTED[$i]}" 2>/dev/null || true; done
  MOUNTED=()
  for m in "${OVERLAYS[@]}"; do umount -l "$m" 2>/dev/null || true; done
  if [ -n "${SERVER_PID:-}" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  if [ "$KEEP" = 0 ] && [ -n "${RUN_DIR:-}" ]; then rm -rf -- "$RUN_DIR"; fi
  return 0
}
trap cleanup EXIT
chroot_mounts() {  # chroot_mounts ROOT: what an installer's shell has (proc, sys, dev, DNS)
  local r="$1" m
  for m in proc sys dev dev/pts; do
    mkdir -p "$r/$m"
    case "$m" in
      proc) mount -t proc proc "$r/proc" ;;
      sys) mount --rbind /sys "$r/sys"; mount --make-rslave "$r/sys" ;;
      dev) mount --rbind /dev "$r/dev"; mount --make-rslave "$r/dev" ;;
      dev/pts) continue ;;
    esac
    MOUNTED+=("$r/$m")
  done
  cp -L /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
}
chroot_umounts() {
  local m
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount -R -l "${MOUNTED[$i]}" 2>/dev/null || true; done
  MOUNTED=()
}
in_root() {  # in_root ROOT CMD...: a login-like root shell inside the tree (chroot)
  local r="$1"
  shift
  chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TERM=dumb PIP_CERT=/etc/ssl/host-ca-certificates.crt "$@"
}

# ---------------------------------------------------------------------------- base root
# Raspberry Pi OS Lite is bookworm with systemd and python3: the same here, nothing more.
INCLUDE="systemd,systemd-sysv,dbus,python3,ca-certificates,iproute2"
MIRROR_ARGS=()
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
  [ -s "$f" ] && grep -q 'debian' "$f" && MIRROR_ARGS+=("$f")
done
[ "${#MIRROR_ARGS[@]}" -gt 0 ] || MIRROR_ARGS=(http://deb.debian.org/debian)
BASE_KEY="$(printf '%s\n' bookworm "$ARCH" apt "$INCLUDE" | sha256sum | cut -c1-12)"
BASE="$CACHE/base-$ARCH-$BASE_KEY"

stage "base root ($ARCH)"
mkdir -p "$CACHE"
if [ -f "$BASE/.complete" ]; then
  ok "cached $BASE"
else
  rm -rf -- "$BASE.partial"
  nice -n 10 mmdebstrap --quiet --variant=apt --arch="$ARCH" --include="$INCLUDE" \
    bookworm "$BASE.partial" "${MIRROR_ARGS[@]}" >"$CACHE/mmdebstrap-$ARCH.log" 2>&1 \
    || { tail -20 "$CACHE/mmdebstrap-$ARCH.log" >&2; give_up "mmdebstrap failed (log: $CACHE/mmdebstrap-$ARCH.log)"; }
  rm -rf -- "$BASE"
  mv -- "$BASE.partial" "$BASE"
  date -u +%FT%TZ >"$BASE/.complete"
  ok "built $BASE ($(du -sh "$BASE" | cut -f1))"
fi

RUN_DIR="$WORKDIR/$ARCH"
fresh_root() {  # fresh_root NAME: FRESH= the pristine base under an overlay (or a copy)
  local r="$RUN_DIR/$1"
  umount "$r" 2>/dev/null || true
  rm -rf -- "$r" "$r.upper" "$r.ovwork"
  mkdir -p "$r" "$r.upper" "$r.ovwork"
  # The base stays untouched below; what the run writes lands in NAME.upper.
  if mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$r.upper,workdir=$r.ovwork" "$r" 2>/dev/null; then
    OVERLAYS+=("$r")
  else
    cp -a -- "$BASE/." "$r"
  fi
  rm -f -- "$r/.complete"
  echo "sentinel-try" >"$r/etc/hostname"
  # Where this host reaches PyPI through a TLS proxy with its own CA, pip in the root
  # trusts what the host trusts (PIP_CERT above; a file no provisioning step touches).
  cp -L /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/host-ca-certificates.crt"
  FRESH="$r"
}
copy_source() {  # copy_source TREE ROOT DEST: the tracked files of a checkout, as a clone has them
  mkdir -p "$2$3"
  git -C "$1" ls-files -z | (cd "$1" && tar --null -T - -cf -) | tar -xf - -C "$2$3"
}

# The authority: a demo publisher on the host, served over HTTP on 127.0.0.1 (a free
# port); the device pins its root key by fingerprint, as a real install does.
stage "publisher"
HOST_VENV="$SRC/.venv"
PUB_ARGS=()
if [ -x "$HOST_VENV/bin/sentinel" ]; then
  PUB="$RUN_DIR/publisher"
  rm -rf -- "$PUB"
  mkdir -p "$RUN_DIR"
  "$HOST_VENV/bin/sentinel" publish demo --out "$PUB" >/dev/null
  cp "$PUB/root_pub.pem" "$PUB/site/root_pub.pem"
  FPR="$("$HOST_VENV/bin/sentinel" enroll --fingerprint "$PUB/root_pub.pem")"
  PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  python3 -m http.server --bind 127.0.0.1 --directory "$PUB/site" "$PORT" >"$RUN_DIR/http.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  PUB_ARGS=(--publisher-url "http://127.0.0.1:$PORT" --root-key-fingerprint "$FPR")
  ok "demo publisher on http://127.0.0.1:$PORT, root key $FPR"
else
  echo "  skipped  no $HOST_VENV (scripts/setup.sh): the device uses its own demo publisher"
fi
PROV_ARGS=(--venue try-venue --gate g1 "${PUB_ARGS[@]}")

# ---------------------------------------------------------------------------- snapshots
# Every path outside the kernel's and the runtime's file systems: type, mode, owner, size,
# content hash or link target.  "changed" = any of those differs (mtimes are not compared).
snapshot() {  # snapshot ROOT OUT [EXCLUDE_REGEX]
  python3 - "$1" "$2" "${3:-}" <<'PY'
import hashlib, os, re, stat, sys
root, out, exclude = sys.argv[1], sys.argv[2], sys.argv[3]
skip = re.compile(r"^(proc|sys|dev|run|tmp|var/tmp)(/|$)")
ex = re.compile(exclude) if exclude else None
with open(out, "w") as f:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            if skip.match(rel) or (ex and ex.search(rel)):
                continue
            st = os.lstat(p)
            meta = f"{stat.S_IFMT(st.st_mode):o} {stat.S_IMODE(st.st_mode):o} {st.st_uid}:{st.st_gid}"
            if stat.S_ISLNK(st.st_mode):
                meta += " -> " + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
                meta += f" {st.st_size} {h.hexdigest()}"
            f.write(f"{rel}\t{meta}\n")
PY
}
changed_files() {  # changed_files A B: how many paths were added, removed or differ
  python3 - "$1" "$2" <<'PY'
import sys
a = dict(l.rstrip("\n").split("\t", 1) for l in open(sys.argv[1]))
b = dict(l.rstrip("\n").split("\t", 1) for l in open(sys.argv[2]))
diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
for k in diff[:20]:
    print(f"    {'+' if k not in a else '-' if k not in b else '~'} {k}", file=sys.stderr)
print(len(diff))
PY
}

# ---------------------------------------------------------------------------- provision
only_camera_failed() {  # only_camera_failed LOG: provisioning's one failure is the camera
  # The self-test's camera check fails in a root without a camera: that alone is no
  # failure of the install (the table shows it); anything else is.
  grep -qE "FAILED +sentinel selftest exited 1" "$1" && grep -qE '^camera +FAIL' "$1" \
    && [ "$(grep -cE '^[a-z ]+ +FAIL ' "$1")" = 1 ]
}
stage "provision (first run)"
fresh_root root
ROOT="$FRESH"
copy_source "$SRC" "$ROOT" /root/sentinel
chroot_mounts "$ROOT"
t=$(date +%s.%N)
if in_root "$ROOT" nice -n 10 bash /root/sentinel/scripts/provision.sh "${PROV_ARGS[@]}" \
  >"$RUN_DIR/provision-1.log" 2>&1; then
  ok "provision.sh: $(tail -1 "$RUN_DIR/provision-1.log")"
else
  rc=$?
  if [ "$rc" = 1 ] && only_camera_failed "$RUN_DIR/provision-1.log"; then
    ok "provision.sh: $(tail -1 "$RUN_DIR/provision-1.log") (selftest: only the camera failed: none here)"
  else
    tail -30 "$RUN_DIR/provision-1.log" >&2
    fail "provision.sh exited $rc (log: $RUN_DIR/provision-1.log)"
    PROVISIONED="failed (exit $rc)" BOOTED="not booted: provisioning failed"
    summary
    exit 1
  fi
fi
[ -n "$PROVISIONED" ] || PROVISIONED="$(secs_since "$t")"
grep -E '^(camera|gpio|relay|lights|clock|disk|data) ' "$RUN_DIR/provision-1.log" | sed 's/^/    /' || true

stage "selftest and demo as sentinel"
if in_root "$ROOT" runuser -u sentinel -- /usr/local/bin/sentinel selftest \
  --config /etc/sentinel/sentinel.toml --skip-relay >"$RUN_DIR/selftest.log" 2>&1; then
  ok "selftest: $(tail -1 "$RUN_DIR/selftest.log")"
else
  echo "  note     selftest: $(tail -1 "$RUN_DIR/selftest.log") (no camera in this root)"
fi
if in_root "$ROOT" runuser -u sentinel -- /usr/local/bin/sentinel demo >"$RUN_DIR/demo.log" 2>&1; then
  ok "demo: $(tail -1 "$RUN_DIR/demo.log")"
else
  tail -10 "$RUN_DIR/demo.log" >&2
  fail "sentinel demo as the service user failed (log: $RUN_DIR/demo.log)"
fi

stage "provision (second run)"
snapshot "$ROOT" "$RUN_DIR/snap-1"
in_root "$ROOT" bash /root/sentinel/scripts/provision.sh "${PROV_ARGS[@]}" >"$RUN_DIR/provision-2.log" 2>&1 || true
snapshot "$ROOT" "$RUN_DIR/snap-2"
SECOND="$(changed_files "$RUN_DIR/snap-1" "$RUN_DIR/snap-2")"
[ "$(tail -1 "$RUN_DIR/provision-2.log")" = "provision: no changes" ] \
  || fail "second run said: $(tail -1 "$RUN_DIR/provision-2.log")"
if [ "$SECOND" = 0 ]; then ok "second run: no changes, no byte changed"
else fail "second run changed $SECOND files"
fi
chroot_umounts

# ---------------------------------------------------------------------------- boot
# shellcheck source=scripts/try-install-boot.sh
. "$SRC/scripts/try-install-boot.sh"
if [ "$BOOT" = 1 ]; then
  stage "boot (systemd-nspawn --boot)"
  boot_checks "$ROOT"
fi

# ---------------------------------------------------------------------------- upgrade, uninstall
# shellcheck source=scripts/try-install-upgrade.sh
. "$SRC/scripts/try-install-upgrade.sh"
upgrade_checks

stage ""
echo "== stage times (machine shared; one run)"
printf '  %s\n' "${TIMES[@]}"
printf '  %-28s %7s s\n' "total" "$(elapsed "$T0")"
if [ "${#FAILS[@]}" -gt 0 ]; then
  echo "== failed checks:"
  printf '  - %s\n' "${FAILS[@]}"
fi
summary
[ "${#FAILS[@]}" = 0 ]
