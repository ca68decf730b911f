"""Run the NEPSE simulator: python scripts/fake_nepse.py --port 8080 (see --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from etl.simulator.__main__ import main  # noqa: E402

if __name__ == "__main__":
    main()
