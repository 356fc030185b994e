"""The MQTT bus: topic contract v1 (``topics``), its message schemas (``messages``) and the
connection (``client``, the only importer of aiomqtt)."""
