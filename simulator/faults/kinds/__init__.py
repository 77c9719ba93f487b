"""One module per fault type: its frozen type, validation, scaling, action and registration.

Importing this package imports every module in it, so a new fault type is one new file here
(plus its test in tests/faults/).
"""

import importlib
import pkgutil

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_module.name}")
