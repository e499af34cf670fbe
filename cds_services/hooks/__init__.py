"""One module per CDS service, each a plain async handler the router exposes."""
