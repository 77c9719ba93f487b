"""One module per built-in client family: its adapter and its registration (``CLIENTS``)."""
