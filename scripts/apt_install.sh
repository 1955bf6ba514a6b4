# shellcheck shell=bash
# Sourced by the scripts that install Debian packages: apt_install PKG... installs them as root on a Debian/Ubuntu
# host; returns 1, saying nothing, where this is not a root apt machine (the caller says what that means for it).
# Tries the install first and refreshes the package lists only when it fails (a fresh machine's lists are often
# missing or stale; an up-to-date one saves the update).  apt waits for a lock another apt holds
# (unattended-upgrades on a fresh machine) instead of failing.
apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
  local apt=(apt-get -o DPkg::Lock::Timeout=300 -y -qq)
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@" >/dev/null 2>&1 || {
    "${apt[@]}" update
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@" >/dev/null; }
}
