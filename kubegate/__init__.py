"""kubegate: an access gateway between AI agents, people and Kubernetes."""

__version__ = "0.1.0"
