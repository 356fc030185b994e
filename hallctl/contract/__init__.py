"""Topic contract v1 as JSON Schemas (``schemas/*.json``, Draft 2020-12), the validator that tests,
``hallctl conformance`` and integrators use (:mod:`hallctl.contract.validate`), and the check of a
whole recorded conversation (:mod:`hallctl.contract.traffic`). docs/schemas.md says how to use them.

Importing this package imports nothing else: the validator needs ``jsonschema`` (the
``conformance`` extra), which the node and central daemons never load.
"""
