"""HTTP serving: the interface-neutral gateway core, ASGI and RSGI adapters, Granian launch."""
