"""How kubegate reaches a cluster: its own credentials, impersonation, pooled clients."""
