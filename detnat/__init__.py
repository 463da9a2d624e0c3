"""detnat: who held public address A, port P, at time T, behind deterministic CGNAT / DS-Lite."""

__version__ = "0.1.0"
