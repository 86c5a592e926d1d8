"""The built-in sandbox cluster and development OIDC issuer, for the demo and the tests."""
