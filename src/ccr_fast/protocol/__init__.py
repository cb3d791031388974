"""Sans-I/O protocol code: bytes and dicts in, bytes and events out. No sockets, no servers."""
