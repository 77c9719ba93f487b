"""A slow client for the signal tests: ``sleepy_client.py SECONDS``.

It leaves a grandchild (``sleep 60``) in its process group, sleeps SECONDS, then becomes the
known client in never-retry mode (same pid), which follows the contract and talks to the
simulator (through toxiproxy when the scenario has toxics).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(float(sys.argv[1]))
known = Path(__file__).with_name("known_client.py")
os.execv(sys.executable, [sys.executable, str(known), "never-retry"])
