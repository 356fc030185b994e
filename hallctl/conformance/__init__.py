"""``hallctl conformance``: play an outside client against whatever central runs on a broker and
report each promise of the topic contract (docs/topics.md) kept or broken (docs/conformance.md)."""
