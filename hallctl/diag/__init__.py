"""The technician's tools: ``hallctl diag`` (over MQTT) and ``hallctl doctor`` (on a node)."""
