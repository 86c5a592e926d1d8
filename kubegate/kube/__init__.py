"""Kubernetes wire facts: request info parsing, Status objects, header rules."""
