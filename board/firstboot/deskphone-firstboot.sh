#!/bin/bash
# Install deskphone on Raspberry Pi OS from the offline bundle (tools/dist.py) it sits in.
#
#   sudo bash deskphone-firstboot.sh [--bundle DIR] [--boot DIR]
#
# firstrun.sh runs it once at first boot from /boot/firmware/deskphone/; it can be run again by
# hand: every step looks before it changes anything, so a re-run repairs a half-done install
# and changes nothing on a complete one. Needs no network: the firmware wheel (and, from
# `dist.py --with-deps`, its dependency wheels) come from the bundle; the venv sees the
# image's own Python packages (--system-site-packages): python3-gpiozero, python3-lgpio,
# python3-serial, python3-numpy (board/firstboot/README.md lists what the image needs).
#
# Steps: check the bundle against its MANIFEST; the per-card settings tools/flash.py wrote to
# device.conf (hostname, the admin user and its SSH keys, ssh on); the service user
# "deskphone"; the venv /opt/deskphone with the wheel; the systemd unit, enabled; the overlay
# and the config.txt lines; i2c-dev in /etc/modules; /etc/deskphone/phone.toml (0600, owned
# by the service user; an existing one, maybe provisioned since, is kept).
#
# DESKPHONE_ROOT=DIR makes every file path relative to DIR and never touches the running
# system (tests run it so, with stand-in commands on PATH).
set -euo pipefail

ROOT="${DESKPHONE_ROOT:-}"
SERVICE_USER=deskphone
# the unit's SupplementaryGroups, plus input for the kernel keypad/hook drivers' event devices
SERVICE_GROUPS=(gpio i2c spi audio dialout input)
ADMIN_GROUPS=(sudo adm dialout audio video plugdev users input netdev gpio i2c spi)
VENV=/opt/deskphone
CONFIG_DIR=/etc/deskphone
MARK_BEGIN='# >>> deskphone >>>'
MARK_END='# <<< deskphone <<<'

log() { echo "deskphone-firstboot: $*"; }
die() { echo "deskphone-firstboot: error: $*" >&2; exit 1; }
trap 'echo "deskphone-firstboot: error: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

usage() {
  sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BOOT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle|--boot)
      [ $# -ge 2 ] || die "$1 needs a directory"
      if [ "$1" = --bundle ]; then BUNDLE="$2"; else BOOT="$2"; fi
      shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
if [ -z "$BOOT" ]; then
  # the bundle normally sits on the boot partition itself (BOOT/deskphone)
  if [ -f "$BUNDLE/../config.txt" ]; then
    BOOT="$(cd "$BUNDLE/.." && pwd)"
  elif [ -d "$ROOT/boot/firmware" ]; then
    BOOT="$ROOT/boot/firmware"
  else
    BOOT="$ROOT/boot"
  fi
fi

user_exists() { grep -q "^$1:" "$ROOT/etc/passwd" 2>/dev/null; }
group_exists() { grep -q "^$1:" "$ROOT/etc/group" 2>/dev/null; }
in_group() {  # in_group USER GROUP: USER is listed as a member of GROUP
  grep "^$2:" "$ROOT/etc/group" 2>/dev/null | cut -d: -f4 | tr ',' '\n' | grep -qx "$1"
}
home_of() { awk -F: -v u="$1" '$1 == u { print $6 }' "$ROOT/etc/passwd"; }
prefix() {  # useradd/usermod edit DIR/etc/* with --prefix (shadow >= 4.9) when ROOT is set
  if [ -n "$ROOT" ]; then printf '%s\n' --prefix "$ROOT"; fi
}
systemctl_root() { if [ -n "$ROOT" ]; then systemctl --root="$ROOT" "$@"; else systemctl "$@"; fi; }
same_file() { [ -f "$2" ] && cmp -s "$1" "$2"; }

check_bundle() {
  local name path
  [ -f "$BUNDLE/MANIFEST" ] || die "no MANIFEST in $BUNDLE: not a deskphone bundle"
  (cd "$BUNDLE" && sha256sum --check --strict --quiet MANIFEST) \
    || die "the bundle in $BUNDLE does not match its MANIFEST (a damaged card? write it again)"
  for name in deskphone.service deskphone.dtbo phone.example.toml; do
    [ -f "$BUNDLE/$name" ] || die "the bundle has no $name"
  done
  WHEEL=""
  for path in "$BUNDLE"/deskphone-*.whl; do
    if [ -f "$path" ]; then WHEEL="$(basename "$path")"; break; fi
  done
  [ -n "$WHEEL" ] || die "the bundle has no deskphone-*.whl"
  VERSION="$(echo "$WHEEL" | cut -d- -f2)"
  log "bundle $BUNDLE: deskphone $VERSION, MANIFEST checked"
}

# device.conf: key=value lines written by tools/flash.py. Read, never sourced: a value is
# data, not shell; each is checked against what it may be.
NEW_HOSTNAME=""
ADMIN_USER=""
ADMIN_HASH=""
ENABLE_SSH=0
read_device_conf() {
  local conf="$BUNDLE/device.conf" line key value
  [ -f "$conf" ] || { log "no device.conf: hostname and admin user left as they are"; return 0; }
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line%$'\r'}"
    case "$line" in ''|'#'*) continue ;; esac
    key="${line%%=*}"
    value="${line#*=}"
    case "$key" in
      hostname)
        [[ "$value" =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] || die "device.conf: bad hostname"
        NEW_HOSTNAME="$value" ;;
      admin_user)
        [[ "$value" =~ ^[a-z][a-z0-9-]{0,31}$ ]] || die "device.conf: bad admin_user"
        ADMIN_USER="$value" ;;
      admin_password_hash)
        [[ "$value" =~ ^\$[0-9a-z]+\$[A-Za-z0-9./\$=,-]+$ ]] \
          || die "device.conf: admin_password_hash is not a crypt(3) hash"
        ADMIN_HASH="$value" ;;
      ssh)
        [[ "$value" =~ ^[01]$ ]] || die "device.conf: ssh must be 0 or 1"
        ENABLE_SSH="$value" ;;
      *) log "device.conf: ignoring unknown key ${key}" ;;
    esac
  done <"$conf"
}

set_hostname() {
  [ -n "$NEW_HOSTNAME" ] || return 0
  if [ "$(cat "$ROOT/etc/hostname" 2>/dev/null || true)" != "$NEW_HOSTNAME" ]; then
    echo "$NEW_HOSTNAME" >"$ROOT/etc/hostname"
    log "hostname: $NEW_HOSTNAME"
  fi
  # Debian resolves its own name through the 127.0.1.1 line
  if grep -q '^127\.0\.1\.1[[:space:]]' "$ROOT/etc/hosts" 2>/dev/null; then
    sed -i "s/^127\\.0\\.1\\.1[[:space:]].*/127.0.1.1\\t$NEW_HOSTNAME/" "$ROOT/etc/hosts"
  else
    printf '127.0.1.1\t%s\n' "$NEW_HOSTNAME" >>"$ROOT/etc/hosts"
  fi
  if [ -z "$ROOT" ]; then
    hostname "$NEW_HOSTNAME" || log "warning: could not set the running hostname (next boot will)"
  fi
}

setup_admin() {
  [ -n "$ADMIN_USER" ] || return 0
  local userconf="$ROOT/usr/lib/userconf-pi/userconf" groups="" g
  if ! user_exists "$ADMIN_USER"; then
    if [ -x "$userconf" ] && awk -F: '$3 == 1000 { found = 1 } END { exit !found }' \
        "$ROOT/etc/passwd"; then
      # Raspberry Pi OS's own way (Imager does the same): rename the image's first user
      # (uid 1000) and stop the rename wizard from asking at the console
      "$userconf" "$ADMIN_USER" "$ADMIN_HASH"
    else
      for g in "${ADMIN_GROUPS[@]}"; do
        if group_exists "$g"; then groups="${groups:+$groups,}$g"; fi
      done
      # shellcheck disable=SC2046  # prefix prints zero or two words
      useradd $(prefix) --create-home --shell /bin/bash ${groups:+--groups "$groups"} \
        --password "${ADMIN_HASH:-!}" "$ADMIN_USER"
    fi
    log "admin user: $ADMIN_USER"
  fi
  local keys="$BUNDLE/authorized_keys" home dir key added=0
  [ -s "$keys" ] || return 0
  home="$(home_of "$ADMIN_USER")"
  [ -n "$home" ] || die "no home directory for $ADMIN_USER"
  dir="$ROOT$home/.ssh"
  install -d -m 0700 "$dir"
  touch "$dir/authorized_keys"
  while IFS= read -r key || [ -n "$key" ]; do
    [ -n "$key" ] || continue
    if ! grep -qxF -- "$key" "$dir/authorized_keys"; then
      echo "$key" >>"$dir/authorized_keys"
      added=$((added + 1))
    fi
  done <"$keys"
  chmod 0600 "$dir/authorized_keys"
  chown -R "$ADMIN_USER:" "$dir"
  [ "$added" -eq 0 ] || log "ssh: $added key(s) for $ADMIN_USER"
}

enable_ssh() {
  [ "$ENABLE_SSH" = 1 ] || return 0
  systemctl_root enable ssh.service || log "warning: could not enable ssh.service"
}

setup_service_user() {
  local g
  if ! user_exists "$SERVICE_USER"; then
    # shellcheck disable=SC2046
    useradd $(prefix) --system --user-group --home-dir /var/lib/deskphone --no-create-home \
      --shell /usr/sbin/nologin "$SERVICE_USER"
    log "service user: $SERVICE_USER"
  fi
  for g in "${SERVICE_GROUPS[@]}"; do
    if group_exists "$g" && ! in_group "$SERVICE_USER" "$g"; then
      # shellcheck disable=SC2046
      usermod $(prefix) --append --groups "$g" "$SERVICE_USER"
      log "$SERVICE_USER joins group $g"
    fi
  done
}

install_firmware() {
  local venv="$ROOT$VENV" pip
  if [ ! -x "$venv/bin/python" ]; then
    # without python3-venv's ensurepip, make the venv bare and use the image's pip on it
    python3 -m venv --system-site-packages "$venv" \
      || python3 -m venv --system-site-packages --without-pip "$venv" \
      || die "python3 -m venv failed (python3-venv or python3-pip missing from the image?)"
    log "venv: $VENV"
  fi
  if "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    pip=("$venv/bin/python" -m pip)
  else
    pip=(python3 -m pip --python "$venv/bin/python")
  fi
  # --no-index: offline, from the bundle only; the pin makes a re-run a no-op
  "${pip[@]}" install --disable-pip-version-check --no-cache-dir --no-index \
    --find-links "$BUNDLE" "deskphone==$VERSION" \
    || die "pip could not install deskphone $VERSION from $BUNDLE; a dependency the image" \
           "lacks needs its wheel in the bundle: make dist DIST_ARGS=--with-deps"
  log "firmware: deskphone $VERSION in $VENV"
}

install_unit() {
  local unit="$ROOT/etc/systemd/system/deskphone.service"
  if ! same_file "$BUNDLE/deskphone.service" "$unit"; then
    install -D -m 0644 "$BUNDLE/deskphone.service" "$unit"
    log "unit: /etc/systemd/system/deskphone.service"
  fi
  systemctl_root enable deskphone.service
}

install_overlay() {
  local config="$BOOT/config.txt"
  if ! same_file "$BUNDLE/deskphone.dtbo" "$BOOT/overlays/deskphone.dtbo"; then
    install -D -m 0644 "$BUNDLE/deskphone.dtbo" "$BOOT/overlays/deskphone.dtbo"
    log "overlay: $BOOT/overlays/deskphone.dtbo"
  fi
  # the same marked block tools/flash.py writes: present already when the card was made by it
  if [ -f "$BUNDLE/config.txt" ] && ! grep -qxF "$MARK_BEGIN" "$config" 2>/dev/null; then
    { echo; echo "$MARK_BEGIN"; cat "$BUNDLE/config.txt"; echo "$MARK_END"; } >>"$config"
    log "config.txt: deskphone lines added (they take effect at the next boot)"
  fi
}

enable_i2c_dev() {
  # what raspi-config's do_i2c does: /dev/i2c-1 for the OLED needs the i2c-dev module
  if ! grep -qx 'i2c-dev' "$ROOT/etc/modules" 2>/dev/null; then
    echo 'i2c-dev' >>"$ROOT/etc/modules"
    log "/etc/modules: i2c-dev"
  fi
}

install_config() {
  local dir="$ROOT$CONFIG_DIR" src
  # as the unit has it: the directory root's (ConfigurationDirectory=, read-only to the
  # phone under ProtectSystem=strict), the file the service user's alone (it holds secrets)
  install -d -m 0755 "$dir"
  if [ -e "$dir/phone.toml" ]; then
    log "config: $CONFIG_DIR/phone.toml exists, kept"
    return 0
  fi
  src="$BUNDLE/phone.toml"
  [ -f "$src" ] || src="$BUNDLE/phone.example.toml"
  install -m 0600 "$src" "$dir/phone.toml"
  chown "$SERVICE_USER:$SERVICE_USER" "$dir/phone.toml"
  log "config: $CONFIG_DIR/phone.toml from $(basename "$src")"
}

forget_secrets() {
  # the password hash and the keys have been used: they need not stay on a removable card
  rm -f "$BUNDLE/device.conf" "$BUNDLE/authorized_keys"
}

main() {
  [ -n "$ROOT" ] || [ "$(id -u)" -eq 0 ] || die "run as root (sudo)"
  check_bundle
  read_device_conf
  set_hostname
  setup_admin
  enable_ssh
  setup_service_user
  enable_i2c_dev
  install_overlay
  install_config
  install_firmware
  install_unit
  forget_secrets
  log "done: deskphone $VERSION starts at the next boot (systemctl start deskphone to start now)"
}

main
