"""The credential plugin's entry point: kubectl runs it on every call, so a cached token is answered here.

Every kubectl call of a CI job but the first finds its token in the cache (kubegate.cli.tokencache). This
module answers those with json, os, time and hashlib loaded and nothing else, and kubeconfigs start it
with `python -S -P` (invocation.py): ~20 ms a call with Python's own start, against ~50 ms for the
`kubegate` script parsing its flags with argparse. Everything else (a fetch, --from-env, --write-file,
--help, a bad flag) is `kubegate token` itself, kubegate.cli.token, which caches under the same key.
"""

from __future__ import annotations

import sys

from kubegate.cli import tokencache
from kubegate.cli.execcredential import exec_credential, requested_api_version

# Flags whose answer is not a cached token: they go to the full command (kubegate.cli.token's parser
# accepts no abbreviations, so these spellings are the only ones).
NOT_CACHED = tokencache.HANDING_OUT | {"-h", "--help", "--from-env", "--from-file"}


def main(argv: list[str]) -> int:
    """Run `kubegate token ARGV`; the exit code for the process."""
    if not any(arg.partition("=")[0] in NOT_CACHED for arg in argv):
        cached = tokencache.load(tokencache.argv_key(argv))
        if cached is not None:
            print(exec_credential(*cached, requested_api_version()))
            return 0
    from kubegate.cli import token

    return token.main(argv)


def run() -> None:
    """What the kubeconfig's `python -c` calls (invocation.token_plugin)."""
    sys.exit(main(sys.argv[1:]))
