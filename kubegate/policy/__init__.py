"""Policy: rules over identity and request that allow, deny, send to review, and mask."""
