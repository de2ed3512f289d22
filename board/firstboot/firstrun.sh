#!/bin/bash
# deskphone's first-boot hook, in the form Raspberry Pi Imager uses on bookworm ("systemd"
# customisation): tools/flash.py puts this file on the boot partition as firstrun.sh and
# appends to cmdline.txt
#   systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot
#   systemd.unit=kernel-command-line.target
# so systemd runs it once, then reboots. It hands over to the bundle's installer
# (deskphone/deskphone-firstboot.sh, idempotent) and removes itself whatever happened: a
# failed install must not turn into a reboot loop. The installer's log ends up in
# /var/log/deskphone-firstboot.log and, readable from a PC, deskphone/firstboot.log on the card.
#
# Keep the `rm -f ...firstrun.sh` line last but one and the only line that ends in
# "firstrun.sh": on images with raspberrypi-sys-mods' initramfs hook imager_fixup, that hook
# rewrites "/boot/" to "/boot/firmware/" in cmdline.txt and cuts this file at the first line
# matching "rm.*firstrun\.sh$", appending its own clean-up in its place.
set +e

BOOT=/boot/firmware
[ -d "$BOOT/deskphone" ] || BOOT=/boot
LOG=/var/log/deskphone-firstboot.log
{
  echo "== deskphone first boot: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  # --first-boot: the reboot that follows starts the phone, nothing to restart
  bash "$BOOT/deskphone/deskphone-firstboot.sh" --bundle "$BOOT/deskphone" --boot "$BOOT" \
    --first-boot
  echo "== deskphone-firstboot.sh exited with status $?"
} >>"$LOG" 2>&1
# The installer deletes the card's secrets itself on every exit; this catches one that never
# got that far (missing, killed): the password hash and the SSH keys must not stay on the
# card, nor the phone's config once /etc/deskphone has it.
rm -f "$BOOT/deskphone/device.conf" "$BOOT/deskphone/authorized_keys"
if [ -e /etc/deskphone/phone.toml ]; then
  rm -f "$BOOT/deskphone/phone.toml"
fi
cp "$LOG" "$BOOT/deskphone/firstboot.log"
for cmdline in /boot/firmware/cmdline.txt /boot/cmdline.txt; do
  if [ -f "$cmdline" ]; then
    sed -i 's| systemd\.run.*||g' "$cmdline"
  fi
done
sync
rm -f /boot/firmware/firstrun.sh /boot/firstrun.sh
exit 0
