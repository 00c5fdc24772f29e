"""Fixtures of the BGP tests (seed 004 lab 9); the lab itself is in molecule/shared/lab.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
