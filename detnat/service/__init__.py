"""detnat.service."""
