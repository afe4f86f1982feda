"""The jinja2 environment for the templates in harness/templates/: strict, so a typo fails loudly."""

from __future__ import annotations

import jinja2

from harness import paths


def environment(*, autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(paths.TEMPLATES),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
