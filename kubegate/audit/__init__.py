"""Audit outside the gateway: signed chain checkpoints on external anchors, streaming export, access logs."""
