"""Segmentation networks: unet3d and unetr from MONAI, lambda3d of our own (Willoughby and Voiculescu 2024)."""

from __future__ import annotations

from losslab.models._common import NetworkConfig
from losslab.models.lambda3d import Lambda3D, Lambda3DConfig, LambdaBlock3D
from losslab.models.lambda_layer import LambdaLayer3D
from losslab.models.registry import (
    ModelSpec,
    count_parameters,
    get_model,
    list_models,
    list_sizes,
    model_revision,
)
from losslab.models.unet3d import UNet3D, UNet3DConfig
from losslab.models.unetr import UNETRConfig

__all__ = [
    "Lambda3D",
    "Lambda3DConfig",
    "LambdaBlock3D",
    "LambdaLayer3D",
    "ModelSpec",
    "NetworkConfig",
    "UNETRConfig",
    "UNet3D",
    "UNet3DConfig",
    "count_parameters",
    "get_model",
    "list_models",
    "list_sizes",
    "model_revision",
]
