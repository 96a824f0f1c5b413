"""aimscale: scaling-law experiments for Autoregressive Image Models (AIM).

Pipeline: data → model → train → probe → sweep/launch → analysis (separate package, no torch).
"""

__version__ = "0.1.0"
