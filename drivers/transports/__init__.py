"""Transports shared by drivers: serial (a shared RS485 port), TCP, USB, GPIO, and in-memory fakes."""
