"""The clients a run drives, and how.

``adapter`` (the interface: a Launch in, an Invocation out), ``adapters/`` (one module per client
family, each with its ``CLIENTS``), ``registry`` (the built-ins by name), ``launch`` (the harness
side of the client contract: environment, run, read), ``script`` and ``openai_script`` (the client
side: the script and the requests built from it), ``programs/`` (the Python contract clients),
``reference/`` (the reference client), ``versions`` (clients at any published version); the
non-Python clients live in ``js/``, ``openai_js/``, ``go/`` and ``claude_code/``.
"""
