"""kubegate's own HTTP surface: admin API, probes and the web UI."""
