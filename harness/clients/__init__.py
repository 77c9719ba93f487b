"""Built-in clients: programs that follow the client contract, and the adapters that run them."""
