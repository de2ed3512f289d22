"""The ``deskphone`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from . import __version__
from .config import ConfigError

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
    run.add_argument("-c", "--config", metavar="FILE",
                     help="the phone's TOML config file (see firmware/etc/phone.example.toml);"
                          " without one: the embedded offline default")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                     help="override [log] level; debug prints every SIP message "
                          "(digest responses blanked)")
    sim = sub.add_parser(
        "sim", help="run a simulated phone in this terminal (no Pi needed)",
        description="The firmware on mock GPIO pins and an emulated OLED, drawn in the "
                    "terminal; the keyboard is the keypad and the hook. Without -c: an "
                    "offline phone whose numbers dial --peer directly.")
    sim.add_argument("-c", "--config", metavar="FILE", help="a TOML config (default: "
                     "the embedded offline one)")
    sim.add_argument("--user", default="100", help="our number (default 100)")
    sim.add_argument("--sip-port", type=int, default=5062, help="our SIP port (5062)")
    sim.add_argument("--console-port", type=int, default=5099, help="console port (5099)")
    sim.add_argument("--rtp-port", type=int, default=17000, help="first RTP port (17000)")
    sim.add_argument("--peer", default="127.0.0.1:5064",
                     help="where dialled numbers go without a registrar (127.0.0.1:5064)")
    sim.add_argument("--state-dir", default="", help="call history directory")
    sim.add_argument("--audio", choices=("auto", "null"), default="auto",
                     help="auto: the default ALSA device if one opens, else silence")
    sim.add_argument("--log-file", metavar="FILE", help="log here (the terminal is the UI)")
    sim.add_argument("--compact", action="store_true",
                     help="draw the OLED at half size (braille dots), for two side by side")
    check = sub.add_parser("check-config", help="validate a config file and exit",
                           description="Validate a config file: exit 0 if good, 2 with "
                                       "every problem listed if not.")
    check.add_argument("-c", "--config", required=True, metavar="FILE",
                       help="the TOML config file to check")
    return p


def loose_secrets(path: str | None, cfg: object) -> str:
    """Why the config file's secrets are exposed (readable by group or others), or ""."""
    if path is None:
        return ""
    acc = getattr(cfg, "account", None)
    console = getattr(cfg, "console", None)
    if not (getattr(acc, "password", "") or getattr(console, "token", "")):
        return ""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return ""
    if mode & 0o077:
        return (f"{path} holds a password and is readable by others (mode "
                f"{mode & 0o777:o}): chmod 600 {path}")
    return ""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return EXIT_CONFIG
    from .provision.boot import local_config, local_document, read_local
    from .simulator import default_config

    try:
        if args.config is not None:
            local, cfg = read_local(args.config)
        elif args.command == "sim":
            local = local_document(default_config(
                user=args.user, sip_port=args.sip_port, console_port=args.console_port,
                peer=args.peer, rtp_port=args.rtp_port, state_dir=args.state_dir,
                audio=args.audio), "<embedded default>")
            cfg = local_config(local, "<embedded default>")
        else:
            local = local_document(default_config(), "<embedded default>")
            cfg = local_config(local, "<embedded default>")
    except ConfigError as e:
        print(f"deskphone: {e}", file=sys.stderr)
        return EXIT_CONFIG
    loose = loose_secrets(args.config, cfg)
    if args.command == "check-config":
        if loose:
            print(f"deskphone: warning: {loose}", file=sys.stderr)
        print(f"{args.config}: ok")
        return 0
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if args.command == "sim":
        if args.log_file:
            os.makedirs(os.path.dirname(os.path.abspath(args.log_file)), exist_ok=True)
        logging.basicConfig(level=cfg.log.level.upper(), format=fmt,
                            filename=args.log_file or os.devnull)
        from .app import state_dir
        from .provision.boot import boot_config
        from .simulator import run_simulator

        booted = boot_config(local, cfg, state_dir(cfg))
        try:
            asyncio.run(run_simulator(booted, compact=args.compact, local=local,
                                      provisioned=booted is not cfg))
        except OSError as e:
            print(f"deskphone: {e}", file=sys.stderr)
            return 1
        return 0
    level = (args.log_level or cfg.log.level).upper()
    logging.basicConfig(level=level, format=fmt)
    if loose:
        logging.getLogger("deskphone").warning("%s", loose)
    from .app import Phone, state_dir
    from .provision.boot import boot_config

    booted = boot_config(local, cfg, state_dir(cfg))
    provisioned = booted is not cfg
    phone = Phone(booted, local=local, provisioned=provisioned)
    try:
        asyncio.run(phone.run())
    except Exception as e:  # OSError, or a GPIO library's own error for a pin in use
        if not provisioned or phone.started.is_set():
            if not isinstance(e, OSError):
                raise
            print(f"deskphone: {e}", file=sys.stderr)
            return 1
        # the saved provisioned config does not start here: the local one must, and the
        # next sync fetches (and tries) the server's config again
        logging.getLogger("deskphone").error(
            "the provisioned config does not start (%s): starting from the local config",
            getattr(e, "strerror", None) or e)
        try:
            phone = Phone(cfg, local=local)
            asyncio.run(phone.run())
        except OSError as e2:
            print(f"deskphone: {e2}", file=sys.stderr)
            return 1
    return 1 if phone.failed else 0


if __name__ == "__main__":
    sys.exit(main())
