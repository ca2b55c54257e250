"""The one entry point: `python main.py` serves; `python main.py --help` lists admin commands."""

import sys

from dotenv import load_dotenv

if __name__ == "__main__":
    # A .env file, when present, configures local runs; the real environment wins over it.
    load_dotenv(override=False)
    from bolt_app.cli import main

    sys.exit(main())
