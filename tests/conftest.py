"""Make the collection importable as ansible_collections.handcni.podnet for pytest."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".collections"))
