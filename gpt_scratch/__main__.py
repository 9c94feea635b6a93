"""`python -m gpt_scratch ...` runs the `gpt-scratch` command (also under `torchrun -m gpt_scratch ...`)."""

import sys

from .cli import main

sys.exit(main())
