"""The request pipeline: one Flow passed through stages in a fixed order, then forwarded upstream."""
