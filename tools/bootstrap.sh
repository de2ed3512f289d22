#!/usr/bin/env bash
# Installs what `make` needs on a fresh Debian 12 machine; idempotent, silent when nothing is
# missing (no apt call then). Run as root, or as a user with passwordless sudo (sudo -n).
#   - make, python3, and python3-venv (Debian ships ensurepip there: without it
#     `python3 -m venv` fails). python3-pip is not needed: the venv gets pip from ensurepip.
#   - gcc, libc6-dev and the Python headers: pyalsaaudio (a test dependency) and pesq (bench)
#     are built from source by pip.
#   - fonts-dejavu-core: the OLED's legible fonts (DejaVu); Pillow's own font is the fallback.
#   - nginx-light and openssl: the provisioning tests serve configs over HTTPS from a real
#     nginx with a CA the test makes.
#   - device-tree-compiler (dtc): the board overlay is compiled in the tests and by make dist.
#   - fdisk (sfdisk), dosfstools (mkfs.vfat), mtools, xz-utils: tools/flash.py's tests build
#     small SD-card images and configure their FAT boot partition without mounting it.
#   - the SIP test peers (Kamailio, SIPp, baresip, ...): $SHARED_DIR/peers/install.sh,
#     SHARED_DIR defaulting to the shared/ directory laid beside the repo.
#   bootstrap.sh bench: also espeak-ng, which makes the speech for bench/voice_quality.py,
#     and pulseaudio + libasound2-plugins for the ALSA latency figure of bench/latency.py.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_DIR=${SHARED_DIR:-$REPO/../shared}

missing=()
command -v make >/dev/null 2>&1 || missing+=(make)
if ! command -v python3 >/dev/null 2>&1; then
    missing+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
if command -v python3 >/dev/null 2>&1 && ! [ -f "$(python3 -c \
        'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then
    missing+=(python3-dev)
fi
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
# /usr/sbin is not on every user's PATH: look for the files themselves
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v dtc >/dev/null 2>&1 || missing+=(device-tree-compiler)
[ -x /usr/sbin/sfdisk ] || [ -x /sbin/sfdisk ] || missing+=(fdisk)
[ -x /usr/sbin/mkfs.vfat ] || [ -x /sbin/mkfs.vfat ] || missing+=(dosfstools)
command -v mcopy >/dev/null 2>&1 || missing+=(mtools)
command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
if [ "${1:-}" = bench ]; then
    command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
    # bench/latency.py's ALSA figure: a private PulseAudio null sink reached through ALSA
    command -v pulseaudio >/dev/null 2>&1 || missing+=(pulseaudio)
    compgen -G '/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so' >/dev/null \
        || missing+=(libasound2-plugins)
fi

if [ ${#missing[@]} -gt 0 ]; then
    SUDO=()
    [ "$(id -u)" -eq 0 ] || SUDO=(sudo -n)
    LOG=$(mktemp /tmp/bootstrap-apt.XXXXXX)
    start=$(date +%s)
    apt_install() {
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q install -y \
            --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}" >>"$LOG" 2>&1
    }
    # a fresh machine has no package lists yet: update only when the install needs it
    if ! apt_install; then
        if ! { "${SUDO[@]}" apt-get -q update >>"$LOG" 2>&1 && apt_install; }; then
            cat "$LOG" >&2
            echo "bootstrap: apt-get failed installing ${missing[*]}" >&2
            rm -f "$LOG"
            exit 1
        fi
    fi
    rm -f "$LOG"
    echo "bootstrap: installed ${missing[*]} in $(($(date +%s) - start)) s"
fi

if [ ! -f "$SHARED_DIR/peers/install.sh" ]; then
    echo "bootstrap: no $SHARED_DIR/peers/install.sh (set SHARED_DIR to the shared/ dir)" >&2
    exit 1
fi
bash "$SHARED_DIR/peers/install.sh"
