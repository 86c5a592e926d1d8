"""Just-in-time approval of requests the policy sends to review."""
