"""The API's routes, one module per feature; each route declares its access (``api.policy``)."""
