"""Transports that carry messages between a client and a kernel: ZeroMQ today."""

from __future__ import annotations
