"""Built-in block families. Each registers through the same pluggy hooks as third-party
plugins (see `dlc.hookspecs`)."""
