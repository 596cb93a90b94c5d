# shellcheck shell=bash
# Sourced by scripts/try-install.sh: upgrade_checks (work in progress).
upgrade_checks() {
  echo "  skipped  upgrade and uninstall stages"
}
