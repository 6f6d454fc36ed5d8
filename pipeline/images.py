"""Image encoding, decoding and resizing: how views' pixels are stored and read back.

Prepared stores keep colour images either encoded (JPEG/PNG bytes, flat array + offsets:
``views/image_bytes`` / ``views/image_offsets``) or raw (``views/image``); the sample attribute
``image_codec`` says which. Readers call :func:`read_view_images` and never care.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

CODECS = ("jpeg", "png", "raw")


def encode_image(image: np.ndarray, codec: str, quality: int = 95) -> bytes:
    """Encode an RGB image (H, W, 3) uint8 as JPEG or PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    if codec == "jpeg":
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
    elif codec == "png":
        Image.fromarray(image).save(buffer, format="PNG", compress_level=3)
    else:
        raise ValueError(f"cannot encode with codec {codec!r}; use one of {CODECS[:2]}")
    return buffer.getvalue()


def decode_image(data: bytes | np.ndarray) -> np.ndarray:
    """Decode JPEG/PNG bytes → RGB (H, W, 3) uint8."""
    from PIL import Image

    raw = data.tobytes() if isinstance(data, np.ndarray) else data
    with Image.open(io.BytesIO(raw)) as img:
        return np.asarray(img.convert("RGB"))


def encode_images(images: Sequence[np.ndarray], codec: str, quality: int = 95) -> tuple[np.ndarray, np.ndarray]:
    """Encode images → (flat bytes (B,) uint8, offsets (n+1,) int64)."""
    blobs = [encode_image(img, codec, quality) for img in images]
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in blobs], out=offsets[1:])
    flat = np.frombuffer(b"".join(blobs), dtype=np.uint8).copy()
    return flat, offsets


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize RGB (H, W, 3) uint8 to ``size`` (W, H) with bilinear filtering (edge-aligned)."""
    from PIL import Image

    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize(tuple(size), Image.BILINEAR))


def nearest_indices(length: int, new_length: int) -> np.ndarray:
    """(new_length,) int64 source pixel of each output pixel along an axis resized from ``length``
    to ``new_length`` pixels: ``floor((j + 0.5) * length / new_length)``, the nearest pixel centre
    (the edge-aligned convention of :func:`pipeline.camera.scale_intrinsics`). Every nearest
    resize of labels and masks uses it."""
    return np.minimum(((np.arange(new_length) + 0.5) * length / new_length).astype(np.int64), length - 1)


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an integer label map (H, W) to ``size`` (W, H) by nearest neighbour (pixel centres,
    :func:`nearest_indices`)."""
    height, width = labels.shape[:2]
    if (width, height) == tuple(size):
        return labels
    return labels[nearest_indices(height, size[1])[:, None], nearest_indices(width, size[0])[None, :]]


def read_view_images(reader, sample_id: str, views: Sequence[int] | None = None) -> np.ndarray:
    """Colour images of a prepared sample → (n, H, W, 3) uint8, for the given view indices (all if None).

    ``reader`` is a :class:`pipeline.stores.StoreReader` of a ``prepared`` store.
    """
    attrs = reader.sample_attrs(sample_id)
    n_views = attrs["sizes"]["view"]
    views = list(range(n_views)) if views is None else [int(v) for v in views]
    if attrs.get("image_codec", "raw") == "raw":
        arr = reader.array(sample_id, "views/image")
        return np.stack([np.asarray(arr[v]) for v in views]) if views else np.zeros((0, 0, 0, 3), np.uint8)
    offsets = reader.read(sample_id, "views/image_offsets")
    flat = reader.array(sample_id, "views/image_bytes")
    out = [decode_image(np.asarray(flat[int(offsets[v]) : int(offsets[v + 1])])) for v in views]
    return np.stack(out) if out else np.zeros((0, 0, 0, 3), np.uint8)
