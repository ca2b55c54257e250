"""The one entry point: `python main.py` serves; `python main.py --help` lists admin commands."""

import sys

from dotenv import load_dotenv

if __name__ == "__main__":
    # A .env file, when present, configures local runs; the real environment wins over it.
    load_dotenv(override=False)
    if sys.argv[1:2] == ["sandbox"]:
        # The sandbox lives with the stand-in, outside the product package.
        from slack_standin.sandbox import main as sandbox

        sys.exit(sandbox(sys.argv[2:]))
    from bolt_app.cli import main

    sys.exit(main())
