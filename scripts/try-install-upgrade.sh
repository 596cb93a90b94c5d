# shellcheck shell=bash
# Sourced by scripts/try-install.sh: upgrade_checks provisions a fresh root from the
# previous release (scripts/previous-release), puts a device's data there with that
# release's code, provisions again from this checkout and checks every event, key, audit
# entry and user survived (scripts/upgrade-data.py); then --uninstall (data kept) and
# --uninstall --purge-data (data and service user gone).

upgrade_checks() {
  local r log
  if [ "${NO_UPGRADE:-0}" = 1 ]; then
    echo "  skipped  upgrade and uninstall stages (--no-upgrade)"
    return
  fi
  if [ -z "$OLD_REV" ] || ! git -C "$SRC" cat-file -e "$OLD_REV^{commit}" 2>/dev/null; then
    echo "  skipped  upgrade: no previous release ${OLD_REV:-named} in this clone"
    return
  fi
  stage "upgrade from $OLD_REV"
  fresh_root upgrade
  r="$FRESH"
  mkdir -p "$r/root/sentinel-old"
  git -C "$SRC" archive "$OLD_REV" | tar -xf - -C "$r/root/sentinel-old"
  copy_source "$SRC" "$r" /root/sentinel
  chroot_mounts "$r"
  # The data tool runs as the service user, who cannot read root's home.
  install -m 0644 "$SRC/scripts/upgrade-data.py" "$r/tmp/upgrade-data.py"
  # Releases before this one did not refresh the package lists themselves.
  in_root "$r" apt-get update -qq >"$RUN_DIR/upgrade-apt.log" 2>&1 || true
  log="$RUN_DIR/upgrade-old.log"
  if in_root "$r" nice -n 10 bash /root/sentinel-old/scripts/provision.sh "${PROV_ARGS[@]}" >"$log" 2>&1 \
    || only_camera_failed "$log"; then
    ok "$OLD_REV provisioned: $(tail -1 "$log")"
  else
    tail -20 "$log" >&2
    fail "upgrade: provisioning $OLD_REV failed (log: $log)"
    chroot_umounts
    return
  fi
  # The device in service under the old release (its own code writes the files).
  if ! in_root "$r" runuser -u sentinel -- /opt/sentinel/venv/bin/python -P \
    /tmp/upgrade-data.py make /var/lib/sentinel /tmp/upgrade-expect.json \
    >"$RUN_DIR/upgrade-data.log" 2>&1; then
    fail "upgrade: could not write $OLD_REV data ($(tail -1 "$RUN_DIR/upgrade-data.log"))"
  fi
  log="$RUN_DIR/upgrade-new.log"
  if in_root "$r" nice -n 10 bash /root/sentinel/scripts/provision.sh "${PROV_ARGS[@]}" >"$log" 2>&1 \
    || only_camera_failed "$log"; then
    ok "upgraded in place: $(tail -1 "$log") ($(grep -c 'changed  write /etc/systemd' "$log") unit files, venv: $(grep -o 'install sentinel into .*' "$log" || echo unchanged))"
  else
    tail -20 "$log" >&2
    fail "upgrade: provisioning this checkout over $OLD_REV failed (log: $log)"
  fi
  if in_root "$r" runuser -u sentinel -- /opt/sentinel/venv/bin/python -P \
    /tmp/upgrade-data.py check /var/lib/sentinel /tmp/upgrade-expect.json \
    >"$RUN_DIR/upgrade-check.log" 2>&1; then
    ok "$(tail -1 "$RUN_DIR/upgrade-check.log")"
  else
    fail "upgrade: $(tr '\n' ' ' <"$RUN_DIR/upgrade-check.log")"
  fi

  stage "uninstall"
  log="$RUN_DIR/uninstall.log"
  in_root "$r" bash /root/sentinel/scripts/provision.sh --uninstall >"$log" 2>&1 || fail "uninstall exited non-zero (log: $log)"
  if [ ! -e "$r/opt/sentinel" ] && [ ! -e "$r/etc/systemd/system/sentinel.service" ] \
    && [ ! -L "$r/etc/systemd/system/multi-user.target.wants/sentinel.service" ] \
    && [ -s "$r/var/lib/sentinel/device_key.pem" ] && in_root "$r" id -u sentinel >/dev/null \
    && in_root "$r" runuser -u sentinel -- python3 -c 'import sqlite3, sys
sys.exit(0 if sqlite3.connect("file:/var/lib/sentinel/journal.db?mode=ro", uri=True).execute("select count(*) from events").fetchone()[0] else 1)'; then
    ok "uninstall: $(tail -1 "$log"); units, venv and links gone; data, journal and user kept"
  else
    fail "uninstall: left or lost something (log: $log)"
  fi
  [ "$(in_root "$r" bash /root/sentinel/scripts/provision.sh --uninstall | tail -1)" = "provision: no changes" ] \
    || fail "uninstall is not idempotent"
  log="$RUN_DIR/purge.log"
  in_root "$r" bash /root/sentinel/scripts/provision.sh --uninstall --purge-data >"$log" 2>&1 || fail "purge exited non-zero (log: $log)"
  if [ ! -e "$r/var/lib/sentinel" ] && [ ! -e "$r/etc/sentinel" ] && ! in_root "$r" id -u sentinel >/dev/null 2>&1 \
    && grep -q "shred /var/lib/sentinel/journal-keys.db" "$log"; then
    ok "purge: $(grep -c '  changed  shred' "$log") key files shredded, data, settings and user gone"
  else
    fail "purge: data or user left behind (log: $log)"
  fi
  chroot_umounts
}
