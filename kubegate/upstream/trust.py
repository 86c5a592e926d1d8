"""TLS trust in a connection's API server: the SSL context, rebuilt when the CA file it came from changes.

The kubelet rewrites a pod's service-account `ca.crt` in place when the cluster's CA rotates; client-go
follows the file since Kubernetes 1.36 (feature ClientsAllowCARotation, on by default): at most every five
minutes it reads the CA file again, and a changed, non-empty CA that parses gives a new transport for new
connections while requests under way finish on the old one. kubegate does the same.
"""

from __future__ import annotations

import logging
import ssl
import time
from pathlib import Path

from kubegate.upstream.credentials import CertPair, ssl_context_for

CA_RECHECK_SECONDS = 300.0  # client-go's CA refresh period
log = logging.getLogger(__name__)


class Trust:
    """The SSL context for one API server; with a CA file, re-read when due (`refresh`)."""

    def __init__(self, ca_file: Path | None, ca_data: bytes | None, insecure: bool, client_cert: CertPair | None):
        self._client_cert = client_cert
        self._ca_file = None if insecure else ca_file
        if self._ca_file is not None:
            ca_data = self._ca_file.read_bytes()
        self._ca_data = ca_data
        self.context = ssl_context_for(None, ca_data, insecure, client_cert)
        self._checked = time.monotonic()

    def refresh(self) -> bool:
        """Read the CA file again if CA_RECHECK_SECONDS have passed; True when it changed and the context
        was replaced. A file that cannot be read, is empty or holds no certificate keeps the context in use,
        as client-go keeps its transport: the old CA may still be the right one."""
        if self._ca_file is None or time.monotonic() - self._checked < CA_RECHECK_SECONDS:
            return False
        self._checked = time.monotonic()
        try:
            data = self._ca_file.read_bytes()
            if data == self._ca_data:
                return False
            if not data.strip():
                raise ValueError("the file is empty")
            context = ssl_context_for(None, data, False, self._client_cert)
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.warning("cannot use CA file %s (%s): the CA read before stays in use", self._ca_file, exc)
            return False
        self.context, self._ca_data = context, data
        log.info("CA file %s changed: new connections to the API server trust the CA it holds now", self._ca_file)
        return True
