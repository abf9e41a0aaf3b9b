"""guide_ray: GUIDE generative unlearning for EG3D, run at scale on Ray.

Importing the package is cheap on purpose (no torch, no ray): the CLI parses arguments and
reports bad input before any heavy import.
"""

__version__ = "0.1.0"
