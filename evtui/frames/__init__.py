"""Frame encoding for models and fingerprints for the cache."""

from evtui.frames.encode import (
    FORMATS,
    EncodedImage,
    EncodeSpec,
    downscale_for_retry,
    encode_frame,
    fit_size,
    frame_pixel_hash,
    largest_size_within,
    size_for_short_side,
)

__all__ = [
    "FORMATS",
    "EncodeSpec",
    "EncodedImage",
    "downscale_for_retry",
    "encode_frame",
    "fit_size",
    "frame_pixel_hash",
    "largest_size_within",
    "size_for_short_side",
]
