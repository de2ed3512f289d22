"""The phone's hardware: keypad, hook, ringer, LEDs and the OLED, each on an injected driver.

Nothing is imported here, so importing one part (``deskphone.hw.display``) never pulls in
another's driver (gpiozero, luma).
"""
