"""detnat.store."""
