"""losslab: search for the training objective of imbalanced multi-class 3D segmentation."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
