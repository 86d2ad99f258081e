"""Card readers: pure decoders beside the transports that feed them.

- events: ``CardRead``, ``ReaderState``, ``ReadRejected`` (the only things readers yield)
- base: the ``Reader`` protocol and the core every reader shares
- factory: ``build_reader(section, cards, clock)`` and ``card_number_format(cards)``:
  everything built from configuration
- msr / barcode / qr / wedge + keymap / framing / classify: pure decoders
- serial / evdev_reader / pcsc: transports; fake: an in-memory reader (tests, demo)
- discover: what on this machine looks like a reader (``kartapos doctor``)
"""
