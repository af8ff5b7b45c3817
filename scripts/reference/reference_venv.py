"""The pinned virtual environment a reference script runs in (scripts/.venv-<name>, git-ignored).

`ensure(name, pins)` returns when the running interpreter is already the venv's; otherwise it creates the venv
when missing, installs the pinned packages and re-executes the calling script there with the same arguments.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ensure(name, pins):
    venv = os.path.join(ROOT, "scripts", ".venv-" + name)
    python = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    subprocess.check_call([python, "-m", "pip", "install", "-q", *pins])
    os.execv(python, [python, os.path.abspath(sys.argv[0]), *sys.argv[1:]])
