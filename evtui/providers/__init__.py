"""One module per provider wire protocol."""
