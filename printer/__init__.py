"""Receipts and Z reports on ESC/POS printers.

- ``printer.model``: ``ReceiptData`` (everything a receipt prints, captured at enqueue
  time) and ``receipt_for_entry()``;
- ``printer.layout``: pure layout, ``render()`` -> ESC/POS bytes, ``render_text()``;
- ``printer.preview``: ``render_png()``;
- ``printer.transport``: network / serial / USB lp / file transports, DLE EOT status;
- ``printer.queue``: ``PrintQueue``, the durable print queue and its worker;
- ``printer.texts``: every word printed, in Polish.
"""
