"""Teacher API keys from Prefect Secret blocks, for a worker whose environment does not hold them.

A key set in the worker's environment wins. Otherwise the Secret block named below is read at run
time, in the flow's own process, and put into that process's environment only: the key never
becomes a flow parameter, a log line or an artifact.
"""

from __future__ import annotations

import logging
import os

from motioncoach.errors import ConfigurationError
from motioncoach.teachers.keys import check_keys, required_keys

SECRET_BLOCKS = {"GEMINI_API_KEY": "gemini-api-key", "OPENROUTER_API_KEY": "openrouter-api-key"}
log = logging.getLogger(__name__)


def ensure_teacher_keys(labeler: str) -> None:
    """Fill missing teacher keys from their Secret blocks, then fail naming both ways to provide one."""
    for variable in required_keys(labeler):
        if os.environ.get(variable, "").strip():
            continue
        block = SECRET_BLOCKS[variable]
        try:
            from prefect.blocks.system import Secret

            value = Secret.load(block).get()
        except ValueError:  # no block of that name
            continue
        except Exception as exc:  # the API could not be asked: say so, then fail below naming the variable
            log.warning("could not read the Prefect Secret block %r: %s", block, type(exc).__name__)
            continue
        if isinstance(value, str) and value.strip():
            os.environ[variable] = value.strip()
            log.info("%s read from the Prefect Secret block %r", variable, block)
    try:
        check_keys(labeler)
    except ConfigurationError as exc:
        blocks = " or ".join(repr(SECRET_BLOCKS[v]) for v in required_keys(labeler))
        raise ConfigurationError(f"{exc} On a worker, set it in the worker's environment or create the Prefect "
                                 f"Secret block {blocks}.") from None  # fmt: skip
