"""Recurring billing for RBS-family acquiring gateways.

Importing this package opens no connection and reads no setting.
"""

__version__ = "0.1.0"
