#!/bin/bash
# Install deskphone on Raspberry Pi OS from the offline bundle (tools/dist.py) it sits in.
#
#   sudo bash deskphone-firstboot.sh [--bundle DIR] [--boot DIR] [--first-boot]
#
# firstrun.sh runs it once at first boot from /boot/firmware/deskphone/ (with --first-boot: a
# reboot follows, so nothing is restarted); it can be run again by hand, also from a newer
# bundle: every step looks before it changes anything, so a re-run repairs a half-done install,
# upgrades what the bundle changed (the wheel, the unit, the config.txt block) and changes
# nothing on a complete one. Needs no network: the firmware wheel (and, from
# `dist.py --with-deps`, its dependency wheels) come from the bundle; the venv sees the
# image's own Python packages (--system-site-packages): python3-gpiozero, python3-lgpio,
# python3-serial, python3-numpy (board/firstboot/README.md lists what the image needs).
#
# Steps: check the bundle against its MANIFEST; the per-card settings tools/flash.py wrote to
# device.conf (hostname, the admin user and its SSH keys, ssh on); the groups the unit's
# SupplementaryGroups= names (systemd refuses to start it, 216/GROUP, if one is missing); the
# service user "deskphone"; the config.txt block and the overlay; i2c-dev in /etc/modules;
# /etc/deskphone/phone.toml (0600, owned by the service user; an existing one, maybe
# provisioned since, is kept); the venv /opt/deskphone with the wheel; the systemd unit,
# enabled; when the unit or the wheel changed (and not --first-boot), daemon-reload and
# try-restart. On every exit, success or failure, the card's device.conf (the password hash)
# and authorized_keys are deleted, and its phone.toml once /etc/deskphone has one.
#
# DESKPHONE_ROOT=DIR makes every file path relative to DIR and never touches the running
# system: systemctl only with --root, daemon-reload and try-restart are logged, not run (tests
# run it so, with stand-in commands on PATH).
set -euo pipefail

ROOT="${DESKPHONE_ROOT:-}"
SERVICE_USER=deskphone
# joined when the image has them (the unit's SupplementaryGroups=, read from the bundle's
# deskphone.service, are created if missing): input for the kernel keypad/hook event devices
OPTIONAL_GROUPS=(input)
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
FIRST_BOOT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --first-boot) FIRST_BOOT=1; shift ;;
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
systemctl_live() {  # the running system's manager: never with DESKPHONE_ROOT
  if [ -n "$ROOT" ]; then
    log "not run (DESKPHONE_ROOT is set): systemctl $*"
  else
    systemctl "$@"
  fi
}
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
  read_bundle_info
}

# BUNDLE-INFO (tools/dist.py): with_deps=1 when the bundle carries the dependencies' wheels.
# A bundle from before BUNDLE-INFO: any wheel besides deskphone's counts as dependency wheels.
WITH_DEPS=""
read_bundle_info() {
  local info="$BUNDLE/BUNDLE-INFO" line path
  if [ -f "$info" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
      case "${line%$'\r'}" in
        with_deps=1) WITH_DEPS=1 ;;
        with_deps=0) WITH_DEPS=0 ;;
      esac
    done <"$info"
  fi
  if [ -z "$WITH_DEPS" ]; then
    WITH_DEPS=0
    for path in "$BUNDLE"/*.whl; do
      case "$(basename "$path")" in deskphone-*) ;; *) [ -f "$path" ] && WITH_DEPS=1 ;; esac
    done
  fi
  if [ "$WITH_DEPS" = 1 ]; then
    log "bundle: with dependency wheels (dist.py --with-deps)"
  else
    log "bundle: no dependency wheels (built without --with-deps): every dependency must" \
        "come from the image"
  fi
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

# the groups the bundle's unit names in SupplementaryGroups= (an empty assignment resets the
# list, as systemd reads it)
UNIT_GROUPS=()
read_unit_groups() {
  local line value g more
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line%$'\r'}"
    line="${line#"${line%%[![:space:]]*}"}"
    case "$line" in
      SupplementaryGroups=*)
        value="${line#SupplementaryGroups=}"
        if [ -z "${value//[[:space:]]/}" ]; then UNIT_GROUPS=(); continue; fi
        read -ra more <<<"$value"
        for g in "${more[@]}"; do
          [[ "$g" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] \
            || die "deskphone.service: SupplementaryGroups= names a bad group: $g"
          UNIT_GROUPS+=("$g")
        done ;;
    esac
  done <"$BUNDLE/deskphone.service"
}

ensure_groups() {
  # systemd does not start a unit whose SupplementaryGroups= names a missing group
  # (216/GROUP), and an image may lack one (spi without the SPI overlay's udev rule)
  local g
  read_unit_groups
  for g in "${UNIT_GROUPS[@]}"; do
    if ! group_exists "$g"; then
      # shellcheck disable=SC2046  # prefix prints zero or two words
      groupadd $(prefix) -f --system "$g"
      log "group $g created (deskphone.service needs it)"
    fi
  done
}

setup_service_user() {
  local g
  if ! user_exists "$SERVICE_USER"; then
    # shellcheck disable=SC2046
    useradd $(prefix) --system --user-group --home-dir /var/lib/deskphone --no-create-home \
      --shell /usr/sbin/nologin "$SERVICE_USER"
    log "service user: $SERVICE_USER"
  fi
  for g in "${UNIT_GROUPS[@]}" "${OPTIONAL_GROUPS[@]}"; do
    if group_exists "$g" && ! in_group "$SERVICE_USER" "$g"; then
      # shellcheck disable=SC2046
      usermod $(prefix) --append --groups "$g" "$SERVICE_USER"
      log "$SERVICE_USER joins group $g"
    fi
  done
}

# Run by the venv's python: the wheel's requirements (Requires-Dist, markers evaluated) that
# the venv cannot satisfy from the image, one per line. Exit 0 with no output: all there.
DEPS_CHECK='
import email.parser, importlib.metadata as md, re, sys, zipfile
try:
    from packaging.requirements import Requirement
except ImportError:
    try:
        from pip._vendor.packaging.requirements import Requirement
    except ImportError:
        Requirement = None
with zipfile.ZipFile(sys.argv[1]) as whl:
    meta = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
    text = whl.read(meta[0]).decode("utf-8") if meta else ""
for spec in email.parser.Parser().parsestr(text, headersonly=True).get_all("Requires-Dist") or []:
    if Requirement is None:
        if ";" in spec:
            continue
        name, wanted = re.match(r"\s*([A-Za-z0-9._-]+)", spec)[1], None
    else:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name, wanted = req.name, req.specifier
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        print(f"{spec.strip()} (not installed)")
        continue
    if wanted and not wanted.contains(have, prereleases=True):
        print(f"{spec.strip()} (the image has {have})")
'

check_image_deps() {
  # a bundle without dependency wheels installs only if the image has every dependency:
  # say which are missing before pip does (its "no matching distribution" names one)
  local venv="$1" missing
  [ "$WITH_DEPS" = 0 ] || return 0
  if ! missing="$("$venv/bin/python" -c "$DEPS_CHECK" "$BUNDLE/$WHEEL")"; then
    log "warning: could not check the image's Python packages; pip will tell"
    return 0
  fi
  if [ -n "$missing" ]; then
    echo "deskphone-firstboot: error: this bundle has no dependency wheels (it was built" \
         "without --with-deps) and the image lacks:" >&2
    printf '  %s\n' "${missing//$'\n'/$'\n  '}" >&2
    die "build the bundle with: make dist DIST_ARGS=--with-deps (python tools/dist.py" \
        "--with-deps), put it on the card and run this again; nothing was installed"
  fi
  log "dependencies: all from the image"
}

WHEEL_CHANGED=0
install_firmware() {
  local venv="$ROOT$VENV" pip stamp want fresh=0
  # the hash of the wheel last installed: a rebuilt wheel of the same version (which
  # `pip install deskphone==VERSION` would take for installed) is installed again
  stamp="$venv/.deskphone-wheel.sha256"
  want="$(sha256sum "$BUNDLE/$WHEEL" | cut -d' ' -f1)"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
    log "firmware: deskphone $VERSION ($WHEEL) already in $VENV"
    return 0
  fi
  if [ ! -x "$venv/bin/python" ]; then
    # without python3-venv's ensurepip, make the venv bare and use the image's pip on it
    python3 -m venv --system-site-packages "$venv" \
      || python3 -m venv --system-site-packages --without-pip "$venv" \
      || die "python3 -m venv failed (python3-venv or python3-pip missing from the image?)"
    fresh=1
    log "venv: $VENV"
  fi
  check_image_deps "$venv"
  if "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    pip=("$venv/bin/python" -m pip)
  else
    pip=(python3 -m pip --python "$venv/bin/python")
  fi
  # --no-index: offline, from the bundle only; the dependencies from the bundle or the image
  "${pip[@]}" install --disable-pip-version-check --no-cache-dir --no-index \
    --find-links "$BUNDLE" "deskphone==$VERSION" \
    || die "pip could not install deskphone $VERSION from $BUNDLE; a dependency the image" \
           "lacks needs its wheel in the bundle: make dist DIST_ARGS=--with-deps"
  # and this very wheel, even when the same version was installed from an older build: pip
  # keeps an installed version ("already installed with the same version as the provided
  # wheel") unless forced. Not needed in a venv made just now.
  if [ "$fresh" = 0 ]; then
    "${pip[@]}" install --disable-pip-version-check --no-cache-dir --no-index --no-deps \
      --force-reinstall "$BUNDLE/$WHEEL" \
      || die "pip could not reinstall $WHEEL from $BUNDLE"
  fi
  echo "$want" >"$stamp"
  WHEEL_CHANGED=1
  log "firmware: deskphone $VERSION in $VENV"
}

UNIT_CHANGED=0
install_unit() {
  local unit="$ROOT/etc/systemd/system/deskphone.service"
  if ! same_file "$BUNDLE/deskphone.service" "$unit"; then
    install -D -m 0644 "$BUNDLE/deskphone.service" "$unit"
    UNIT_CHANGED=1
    log "unit: /etc/systemd/system/deskphone.service"
  fi
  systemctl_root enable deskphone.service
}

apply_changes() {
  # a running phone keeps the old unit and the old code until told: reload the unit files,
  # restart the service if (and only if) it runs. Not at first boot (a reboot follows) and
  # not when systemd is not the running init (a chroot).
  [ "$UNIT_CHANGED" = 1 ] || [ "$WHEEL_CHANGED" = 1 ] || return 0
  if [ "$FIRST_BOOT" = 1 ]; then
    log "first boot: the reboot that follows starts the new unit and firmware"
    return 0
  fi
  if [ -z "$ROOT" ] && [ ! -d /run/systemd/system ]; then
    log "systemd is not running here: the next boot starts the new unit and firmware"
    return 0
  fi
  systemctl_live daemon-reload
  systemctl_live try-restart deskphone.service
  log "deskphone.service restarted if it was running (the unit or the firmware changed)"
}

install_overlay() {
  local config="$BOOT/config.txt"
  if ! same_file "$BUNDLE/deskphone.dtbo" "$BOOT/overlays/deskphone.dtbo"; then
    install -D -m 0644 "$BUNDLE/deskphone.dtbo" "$BOOT/overlays/deskphone.dtbo"
    log "overlay: $BOOT/overlays/deskphone.dtbo"
  fi
  [ -f "$BUNDLE/config.txt" ] || return 0
  # the same marked block tools/flash.py writes, replaced as flash.py replaces it: a newer
  # bundle's lines take the place of the old ones. A block that differs from the bundle's
  # only in comments and blank lines (flash.py's own) is left as it is.
  local current="" outside tmp="$config.deskphone-new"
  [ ! -f "$config" ] || current="$(cat "$config")"
  if [ "$(marked_block count <<<"$current")" = 1 ] && [ "$(marked_block inside <<<"$current" \
      | bare_lines)" = "$(bare_lines <"$BUNDLE/config.txt")" ]; then
    return 0
  fi
  outside="$(marked_block outside <<<"$current")"
  {
    [ -z "$outside" ] || printf '%s\n\n' "$outside"
    echo "$MARK_BEGIN"
    echo "# added by deskphone-firstboot.sh from the bundle; a newer bundle replaces this block"
    bare_block <"$BUNDLE/config.txt"
    echo "$MARK_END"
  } >"$tmp"
  mv "$tmp" "$config"
  log "config.txt: the deskphone block from this bundle (it takes effect at the next boot)"
}

# marked_block MODE <config.txt. outside: the file without any deskphone block, trailing
# blank lines dropped; inside: the lines in the blocks; count: how many blocks. Markers
# compare as flash.py compares them, without surrounding white space; an unclosed block
# runs to the end of the file (flash.py's merge_config_txt drops it the same way).
marked_block() {
  tr -d '\r' | awk -v mode="$1" -v begin="$MARK_BEGIN" -v end="$MARK_END" '
    { line = $0; gsub(/^[[:space:]]+|[[:space:]]+$/, "", line) }
    line == begin { inside = 1; blocks++; next }
    inside && line == end { inside = 0; next }
    inside { if (mode == "inside") print; next }
    { kept[n++] = $0 }
    END {
      if (mode == "count") print blocks + 0
      if (mode != "outside") exit
      while (n > 0 && kept[n - 1] ~ /^[[:space:]]*$/) n--
      for (i = 0; i < n; i++) print kept[i]
    }'
}
# the bundle's lines without leading and trailing blank lines, as flash.py writes them
bare_block() {
  tr -d '\r' | awk 'NF { for (; blank > 0; blank--) print ""; print; seen = 1; next }
                    seen { blank++ }'
}
# what a block means: its lines without comments and blank lines
bare_lines() { tr -d '\r' | grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' || true; }

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
  # On every exit (a trap): the password hash and the SSH keys, used or not, must not stay
  # on a removable card's FAT partition; the phone's config once /etc/deskphone has one.
  # Only in a bundle directory (never in whatever --bundle named by mistake).
  local name names=(device.conf authorized_keys)
  [ -f "$BUNDLE/MANIFEST" ] || [ -f "$BUNDLE/deskphone-firstboot.sh" ] || return 0
  [ ! -e "$ROOT$CONFIG_DIR/phone.toml" ] || names+=(phone.toml)
  for name in "${names[@]}"; do
    if [ -e "$BUNDLE/$name" ]; then
      if rm -f "$BUNDLE/$name"; then
        log "$name deleted from $BUNDLE"
      else
        echo "deskphone-firstboot: warning: could not delete $BUNDLE/$name: delete it by hand" >&2
      fi
    fi
  done
}

on_exit() {
  local status=$?
  trap - EXIT
  forget_secrets || true
  exit "$status"
}

main() {
  [ -n "$ROOT" ] || [ "$(id -u)" -eq 0 ] || die "run as root (sudo)"
  trap on_exit EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  check_bundle
  read_device_conf
  set_hostname
  ensure_groups
  setup_admin
  enable_ssh
  setup_service_user
  enable_i2c_dev
  install_overlay
  install_config
  install_firmware
  install_unit
  apply_changes
  forget_secrets
  log "done: deskphone $VERSION starts at the next boot (systemctl start deskphone to start now)"
}

main
