"""The Python contract clients: programs the harness launches (``python -m harness.clients.programs.NAME``)."""
