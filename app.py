#!/usr/bin/env python3
"""The CDK app: one stack with the whole UltraServer environment.

Configuration comes from cdk.json context (override with `cdk synth -c key=value`); see
the README's "Configuration" section. This file only reads configuration and places one
construct; everything else lives in the eks_ultraserver package.
"""

import os
import sys

import aws_cdk as cdk

from eks_ultraserver.app import (
    build_app,
    local_context,
    under_cdk_cli,
)
from eks_ultraserver.model import ConfigurationError

try:
    # Under the CDK CLI the context and output directory come from the CLI; a plain
    # `python app.py` reads cdk.json (and cdk.context.json) itself and writes to cdk.out/.
    app = cdk.App(
        context=local_context(),
        outdir=None if under_cdk_cli() or "CDK_OUTDIR" in os.environ else "cdk.out",
    )
    build_app(app)
except ConfigurationError as err:
    # One clear message, no traceback; the CDK CLI shows it and exits non-zero.
    print(f"error: {err}", file=sys.stderr)
    sys.exit(1)
app.synth()
