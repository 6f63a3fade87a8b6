"""``iotml keys``: the local signing key and the keys trusted for model bundles."""

from __future__ import annotations

__all__ = ["keys_cmd"]

from typing import Annotated

import pyarrow as pa
import typer
from rich.markup import escape

from iotml.cli.common import cli_settings, command, console
from iotml.cli.data import Output
from iotml.cli.render import emit
from iotml.registry.keys import PRIVATE_KEY_FILE
from iotml.registry.trust import KeyConfig


@command("keys")
def keys_cmd(
    ctx: typer.Context,
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.table,
) -> None:
    """Show the keys trusted for model bundles, with the fingerprints to pin.

    Trust comes from IOTML_KEY_DIR (default ~/.config/iotml/keys), IOTML_TRUSTED_KEYS and
    IOTML_TRUSTED_FINGERPRINTS, never from the data home. A trusted key file or directory
    that others may write is warned about.
    """
    config = KeyConfig.from_env()
    trusted = config.trusted(cli_settings(ctx).home)
    table = pa.table(
        {
            "fingerprint": [t.key.fingerprint for t in trusted],
            "key_id": [t.key.key_id for t in trusted],
            "file": [str(t.source) for t in trusted],
        }
    )
    if output is not Output.table:
        emit(table, output.value)
        return
    signing = config.key_dir / PRIVATE_KEY_FILE
    state = "" if signing.exists() else " (not created yet: training creates it)"
    console.print(f"signing key: {escape(str(signing))}{state}")
    console.print(f"trusted keys come from {escape(config.describe())}")
    if not trusted:
        console.print("no key is trusted: no model bundle can be loaded")
        return
    emit(table, "table")
