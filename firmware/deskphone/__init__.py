"""deskphone: open firmware for a SIP desk phone on a Raspberry Pi."""

__version__ = "0.1.0"
