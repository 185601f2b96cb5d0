#!/usr/bin/env python
"""Django's command-line utility for Mookti storage."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mookti.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:  # a setting the operator must fix: the message, not a traceback
        from mookti.logs import redact

        sys.exit(f"configuration error: {redact(str(exc))}")
