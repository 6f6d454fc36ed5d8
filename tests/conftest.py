"""Test-session settings shared by every test module."""

import os

# OpenMP threads that spin while waiting make torch many times slower when the cores are shared
# (CI runners, parallel jobs); passive waiting costs nothing measurable when they are not.
# Set before any test module imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
