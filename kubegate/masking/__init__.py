"""Masking: sensitive values are replaced in flight, so no client and no recording ever holds them."""
