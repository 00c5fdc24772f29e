"""Fixtures of the cross-node tests (seed 004 labs 6-8); the lab itself is in molecule/shared/lab.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
