"""Seconds to check and write a fleet of phones with the fleet tool (issue 10).

    .venv/bin/python bench/fleet.py [PHONES]

Checks (--check) and then generates PHONES (default 1000) per-MAC configs in a temporary
directory, each merged over the common file and validated by the phone's schema, and
prints the seconds for each.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from deskphone.provision.fleet import generate

TEMPLATE = """\
[account]
domain = "pbx.example.org"
registrar = "sip:pbx.example.org:5060"

[audio]
tones = "us"
"""


def main() -> None:
    phones = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        inventory = os.path.join(tmp, "inventory.csv")
        template = os.path.join(tmp, "common.toml")
        with open(template, "w") as file:
            file.write(TEMPLATE)
        with open(inventory, "w") as file:
            file.write("mac,extension,display_name,password,account.register_expires\n")
            for i in range(phones):
                file.write(f"aa:bb:cc:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x},"
                           f"{2000 + i},Desk {i},pw-{i:06d},{600 + i % 100}\n")
        start = time.perf_counter()
        result = generate(inventory, template, None)
        checked = time.perf_counter() - start
        assert result.problems == (), result.problems[:3]
        start = time.perf_counter()
        result = generate(inventory, template, os.path.join(tmp, "out"))
        written = time.perf_counter() - start
        assert len(result.phones) == phones
    print(f"{phones} phones: check {checked:.2f} s, check + write {written:.2f} s "
          f"({written / phones * 1000:.2f} ms a phone)")


if __name__ == "__main__":
    main()
