"""The ``deskphone`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from . import __version__
from .config import ConfigError, load_config

EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deskphone",
        description="Open firmware for a SIP desk phone. Without Pi hardware it runs "
                    "headless: drive it through its line console.")
    p.add_argument("--version", action="version", version=f"deskphone {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", help="what to do")
    run = sub.add_parser(
        "run", help="run the phone in the foreground until SIGINT/SIGTERM",
        description="Run the phone in the foreground: register, take and make calls, "
                    "serve the console. SIGINT or SIGTERM un-registers and exits 0.")
    run.add_argument("-c", "--config", required=True, metavar="FILE",
                     help="the phone's TOML config file (see firmware/etc/phone.example.toml)")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                     help="override [log] level; debug prints every SIP message "
                          "(digest responses blanked)")
    check = sub.add_parser("check-config", help="validate a config file and exit",
                           description="Validate a config file: exit 0 if good, 2 with "
                                       "every problem listed if not.")
    check.add_argument("-c", "--config", required=True, metavar="FILE",
                       help="the TOML config file to check")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return EXIT_CONFIG
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"deskphone: {e}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check-config":
        print(f"{args.config}: ok")
        return 0
    level = (args.log_level or cfg.log.level).upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .app import Phone

    try:
        asyncio.run(Phone(cfg).run())
    except OSError as e:
        print(f"deskphone: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
