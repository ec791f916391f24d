"""Directories for files that synth writes and CDK stages as assets.

The library never writes into a user cache: a generated asset (the MPI operator's Helm
chart, the Capacity Block end handler with its list of reservations) goes into a directory
of this process, removed when the interpreter exits. CDK has copied every asset into the
cloud assembly by then (``asset.<hash>``); only ``cdk synth --no-staging``, which points the
assembly at the source directories, leaves nothing to deploy (``GpuPlatformAddons``
warns about it).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def process_directory(prefix: str) -> Path:
    """A new directory (``<tmp>/<prefix>...``) removed when this process exits."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
