# shellcheck shell=bash
# Sourced by scripts/provision.sh for --uninstall [--purge-data]: undo what provisioning
# installed.  Kept: the data (/var/lib/sentinel: journal, audit log, keys, users, bundles),
# the settings (/etc/sentinel) and the service user, so that provisioning again resumes
# where the device was; the system packages (python3-venv, libzbar0, ...) are shared
# with the rest of the system and stay too.  With --purge-data the data is crypto-shredded:
# the keys that open it are overwritten and removed first (journal-keys.db holds every
# day key and the pseudonym key, device_key.pem the audit signing key), then everything
# of Sentinel's goes, settings and service users included.  On flash storage an overwrite
# is best effort (wear levelling); what makes the journal unreadable is that its keys
# existed only in that file (docs/retention.md: never back it up).

uninstall() {
  local u f name boot_cfg
  step "uninstall from ${ROOT}${PURGE_DATA:+ (and purge the data)}"
  local booted=0
  [ "$ON_HOST" = 1 ] && [ -d /run/systemd/system ] && booted=1

  step "services"
  for f in "$SRC_DIR"/systemd/*.timer "$SRC_DIR"/systemd/*.service; do
    [ -f "$f" ] || continue
    name="$(basename "$f")"
    [ -f "$R/etc/systemd/system/$name" ] || continue
    if [ "$booted" = 1 ] && systemctl --quiet is-active "$name"; then
      run systemctl stop "$name"
      [ "$DRY_RUN" = 1 ] || changed "stop $name"
    fi
    if [ "$(systemctl --root="$ROOT" is-enabled "$name" 2>/dev/null || true)" = enabled ]; then
      run systemctl --root="$ROOT" --quiet disable "$name"
      [ "$DRY_RUN" = 1 ] || changed "disable $name"
    fi
  done
  step "files"
  for f in "$SRC_DIR"/systemd/*.timer "$SRC_DIR"/systemd/*.service; do
    [ -f "$f" ] || continue
    remove_path "/etc/systemd/system/$(basename "$f")"
    remove_path "/etc/systemd/system/$(basename "$f").prev"  # an upgrade's previous version
  done
  for f in /etc/udev/rules.d/99-sentinel.rules /etc/systemd/system.conf.d/50-sentinel-watchdog.conf; do
    remove_path "$f"
    remove_path "$f.prev"
  done
  if [ -L "$R/usr/local/bin/sentinel" ] && [ "$(readlink -- "$R/usr/local/bin/sentinel")" = "$VENV/bin/sentinel" ]; then
    remove_path /usr/local/bin/sentinel
  fi
  remove_path /opt/sentinel
  if [ "$booted" = 1 ] && [ "$CHANGES" -gt 0 ]; then run systemctl daemon-reload; fi

  # The boot config keeps everything but the managed block.
  boot_cfg="$BOOT_CONFIG"
  if [ -z "$boot_cfg" ]; then
    for f in /boot/firmware/config.txt /boot/config.txt; do
      [ -f "$R$f" ] && grep -qxF -- "$BEGIN_MARK" "$R$f" && { boot_cfg="$f"; break; }
    done
  fi
  if [ -n "$boot_cfg" ] && [ -f "$R$boot_cfg" ] && grep -qxF -- "$BEGIN_MARK" "$R$boot_cfg"; then
    awk -v b="$BEGIN_MARK" -v e="$END_MARK" '
      $0 == b { skip = 1; next }
      skip && $0 == e { skip = 0; next }
      skip { next }
      { line[++n] = $0 }
      END { while (n > 0 && line[n] ~ /^[[:space:]]*$/) n--; for (i = 1; i <= n; i++) print line[i] }
    ' "$R$boot_cfg" >"$WORK/boot-config.txt"
    put_file "$WORK/boot-config.txt" "$boot_cfg" "$(stat -c %a "$R$boot_cfg")" root:root
    remove_path "$boot_cfg.prev"
  fi

  if [ -z "$PURGE_DATA" ]; then
    [ -d "$R$DATA" ] && say "kept" "$DATA (journal, audit log, keys, users): --purge-data shreds it"
    [ -d "$R/etc/sentinel" ] && say "kept" "/etc/sentinel (settings, pinned root key)"
    [ -n "$(uid_of "$SVC_USER")" ] && say "kept" "user $SVC_USER (owns the data)"
  else
    step "purge data (crypto-shred)"
    for d in "$DATA" "$DEMO_PUB"; do
      [ -d "$R$d" ] || continue
      # Keys first: once they are gone, every copy of the ciphertext is noise.
      while IFS= read -r -d '' f; do
        run shred --iterations=1 --zero --remove=wipesync -- "$f"
        [ "$DRY_RUN" = 1 ] || changed "shred ${f#"$R"}"
      done < <(find "$R$d" -type f \( -name '*key*' -o -name '*.pem' \) -print0 | LC_ALL=C sort -z)
      remove_path "$d"
    done
    remove_path /etc/sentinel
    if [ "$ON_HOST" = 1 ]; then
      for u in sentinel-kiosk "$SVC_USER"; do
        if id -u "$u" >/dev/null 2>&1; then
          run userdel "$u"
          [ "$DRY_RUN" = 1 ] || changed "user $u removed"
        fi
      done
    fi
  fi
  say "kept" "system packages (shared with the rest of the system; apt-get autoremove decides)"
  if [ "$DRY_RUN" = 1 ]; then step "dry run: $CHANGES planned step(s)"
  elif [ "$CHANGES" = 0 ]; then step "no changes"
  else step "$CHANGES change(s)"
  fi
  exit 0
}

remove_path() {  # remove_path TARGET_PATH: a file, link or tree of the installation
  local p="$R$1"
  [ -e "$p" ] || [ -L "$p" ] || return 0
  run rm -rf -- "$p"
  [ "$DRY_RUN" = 1 ] || changed "remove $1"
}
