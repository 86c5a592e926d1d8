"""The MCP endpoint: AI agents call Kubernetes tools that become ordinary requests through kubegate's pipeline."""
