"""The I/O side of the phone: carries out the controller's actions against the SIP
endpoint, the media engine and the hardware, and pumps their events back in."""
