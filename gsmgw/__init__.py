"""gsmgw: an SMS gateway for USB GSM modems (spool in, PDU mode AT out)."""

__version__ = "0.1.0"
