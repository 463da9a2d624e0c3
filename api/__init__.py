"""The REST API: an app factory, thin routes over :mod:`detnat.service`, RFC 9457 problems."""
