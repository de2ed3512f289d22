"""SIP parse speed: deskphone against pyVoIP 1.6.8, in one run, on the shared corpus.

    python3 bench/parse.py [--repeat N] [--corpus DIR]

The corpus is ../shared/corpus/sip beside the repository (or $SHARED_DIR/corpus/sip).
For each parser the table says which of the messages it accepts and its
µs/message over the messages it accepts and over the subset both accept.

Our parser memoises SipUri.parse (bounded); the figure is given with that cache
warm and with it off (uri._URI_CACHE_SIZE = 0), so nobody is misled by a cache
hit. parse_message is lazy: header values other than Content-Length are checked
when read, and a Request-URI in the usual form is checked in full (one regex
that accepts only what SipUri.parse accepts) but built into a SipUri on the first
read of .uri; any other Request-URI is parsed eagerly. pyVoIP splits every header
up front. The "+ build Request-URI" row reads .uri of every request, and the
"+ read UA headers" rows add what a UA core reads of every message (top Via,
From, To, Call-ID, CSeq, Contact; the endpoint does not read the Request-URI of
what it receives), to make that visible too.

Timing: timeit (GC off), the best of --repeat ~10 ms runs of each loop over the set
(the minimum is what the code costs; other processes only ever add to it).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "firmware"))

from deskphone.sip import uri as uri_mod  # noqa: E402
from deskphone.sip.message import Message, Request, parse_message  # noqa: E402


def default_corpus() -> Path:
    shared = os.environ.get("SHARED_DIR")
    return (Path(shared) if shared else ROOT.parent / "shared") / "corpus" / "sip"


def load_pyvoip() -> tuple[Callable[[bytes], object] | None, str]:
    try:
        import pyVoIP  # type: ignore[import-untyped]
        import pyVoIP.VoIP  # noqa: F401  # before pyVoIP.SIP, or the import is circular
        from pyVoIP.SIP import SIPMessage  # type: ignore[import-untyped]
    except ImportError as e:
        return None, f"pyVoIP not installed ({e}); pip install pyVoIP==1.6.8"
    return SIPMessage, f"pyVoIP {pyVoIP.__version__}"


def read_headers(m: Message) -> None:
    """What the UA core reads of every message (endpoint.receive: top Via, the
    dialog/transaction keys, Contact)."""
    m.top_via  # noqa: B018
    m.from_  # noqa: B018
    m.to  # noqa: B018
    m.call_id  # noqa: B018
    m.cseq  # noqa: B018
    m.contacts  # noqa: B018


def ours_full(data: bytes) -> None:
    read_headers(parse_message(data))


def ours_with_uri(data: bytes) -> None:
    """parse_message, then build the Request-URI (what the parser leaves to .uri)."""
    m = parse_message(data)
    if isinstance(m, Request):
        m.uri  # noqa: B018


def accepts(parse: Callable[[bytes], object], data: bytes) -> str | None:
    """None if ``parse`` accepts ``data``, else the error's class and text."""
    try:
        parse(data)
    except Exception as e:  # pyVoIP raises several kinds; ours only RemoteProtocolError
        return f"{type(e).__name__}: {e}"[:60]
    return None


def per_message_us(parse: Callable[[bytes], object], msgs: list[bytes], repeat: int) -> float:
    """Best-of-``repeat`` µs per message of ``parse`` over ``msgs``."""
    if not msgs:
        return float("nan")

    def loop() -> None:
        for m in msgs:
            parse(m)

    # many short runs, the best counts: robust against other processes on the CPU
    number = max(1, int(0.01 / max(timeit.timeit(loop, number=3) / 3, 1e-9)))
    best = min(timeit.repeat(loop, number=number, repeat=repeat))
    return best / number / len(msgs) * 1e6


class UriCacheOff:
    """uri._URI_CACHE_SIZE = 0 (and empty) for the duration of a block."""

    def __enter__(self) -> None:
        self.size = uri_mod._URI_CACHE_SIZE
        uri_mod._URI_CACHE_SIZE = 0
        uri_mod._URI_CACHE.clear()

    def __exit__(self, *exc: object) -> None:
        uri_mod._URI_CACHE_SIZE = self.size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=default_corpus())
    ap.add_argument("--repeat", type=int, default=30, help="timing runs; the best counts")
    args = ap.parse_args()

    paths = sorted(args.corpus.glob("*.sip"))
    if not paths:
        print(f"no *.sip files in {args.corpus} (set SHARED_DIR or --corpus)", file=sys.stderr)
        return 1
    msgs = {p.name: p.read_bytes() for p in paths}
    pyvoip, pyvoip_name = load_pyvoip()

    # which messages each parser accepts
    ours_err = {n: accepts(ours_full, d) for n, d in msgs.items()}
    theirs_err = ({n: accepts(pyvoip, d) for n, d in msgs.items()} if pyvoip
                  else dict.fromkeys(msgs, "not run"))
    ours_ok = [n for n in msgs if ours_err[n] is None]
    theirs_ok = [n for n in msgs if theirs_err[n] is None]
    common = [n for n in ours_ok if n in theirs_ok]

    print(f"SIP parse benchmark: {len(msgs)} messages from {args.corpus}")
    print(f"Python {platform.python_version()} on {platform.machine()}, deskphone vs {pyvoip_name};"
          f" best of {args.repeat} runs, µs per message\n")

    # per-message table
    cols = "{:<26} {:>5}  {:>14}  {:>14}  {:>14}  {}"
    print(cols.format("message", "bytes", "ours warm", "ours no cache", "pyVoIP", "pyVoIP says"))
    for n, d in msgs.items():
        warm = per_message_us(parse_message, [d], args.repeat) if ours_err[n] is None else None
        with UriCacheOff():
            cold = per_message_us(parse_message, [d], args.repeat) if ours_err[n] is None else None
        theirs = (per_message_us(pyvoip, [d], args.repeat)
                  if pyvoip and theirs_err[n] is None else None)
        print(cols.format(
            n[:26], len(d),
            f"{warm:.2f}" if warm is not None else "REJECTED",
            f"{cold:.2f}" if cold is not None else "REJECTED",
            f"{theirs:.2f}" if theirs is not None else "rejected",
            "ok" if theirs_err[n] is None else theirs_err[n]))
    for n in msgs:
        if ours_err[n] is not None:
            print(f"  deskphone rejected {n}: {ours_err[n]}")

    # summary table
    def figures(parse: Callable[[bytes], object], accepted: list[str]) -> tuple[float, float]:
        return (per_message_us(parse, [msgs[n] for n in accepted], args.repeat),
                per_message_us(parse, [msgs[n] for n in common], args.repeat))

    rows: list[tuple[str, int, float, float]] = []
    rows.append(("deskphone parse_message, URI cache warm", len(ours_ok),
                 *figures(parse_message, ours_ok)))
    with UriCacheOff():
        rows.append(("deskphone parse_message, URI cache off", len(ours_ok),
                     *figures(parse_message, ours_ok)))
    with UriCacheOff():
        rows.append(("deskphone + build Request-URI, cache off", len(ours_ok),
                     *figures(ours_with_uri, ours_ok)))
    rows.append(("deskphone + read UA headers, cache warm", len(ours_ok),
                 *figures(ours_full, ours_ok)))
    with UriCacheOff():
        rows.append(("deskphone + read UA headers, cache off", len(ours_ok),
                     *figures(ours_full, ours_ok)))
    if pyvoip:
        rows.append((f"{pyvoip_name} SIPMessage", len(theirs_ok), *figures(pyvoip, theirs_ok)))
    ref = rows[-1][3] if pyvoip else None

    print()
    head = "{:<44} {:>8}  {:>16}  {:>16}  {:>16}"
    print(head.format("parser", "accepts", "µs/msg accepted", f"µs/msg common {len(common)}",
                      "speed vs pyVoIP"))
    for name, n_ok, acc, com in rows:
        ratio = f"{ref / com:.1f}x" if ref and com == com else "-"
        print(head.format(name, f"{n_ok}/{len(msgs)}", f"{acc:.2f}", f"{com:.2f}", ratio))
    if pyvoip:
        print(f"\ncommon subset: {', '.join(n.split('_', 1)[0] for n in common)}"
              f"  (pyVoIP rejects {', '.join(n for n in msgs if n not in theirs_ok) or 'none'})")
    print("parse_message checks the start line, the Request-URI (in full; a usual one is\n"
          "built into a SipUri on first read of .uri, '+ build Request-URI' does that), every\n"
          "header line and Content-Length; '+ read UA headers' also parses the top Via, From,\n"
          "To, Call-ID, CSeq and Contact (pyVoIP splits every header up front, and parses\n"
          "SDP bodies too).")
    return 0 if len(ours_ok) == len(msgs) else 2


if __name__ == "__main__":
    sys.exit(main())
