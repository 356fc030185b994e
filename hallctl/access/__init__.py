"""Roles and access: who may call which central action and read which topic (roles), and the
Mosquitto files that enforce it at the broker (``hallctl broker-config``)."""
