"""A scene as oriented boxes, each face carrying its labels and look.

Face numbering (box-local axes): face ``f`` lies on axis ``f // 2`` at ``-half`` (``f`` even)
or ``+half`` (``f`` odd): 0 = -x, 1 = +x, 2 = -y, 3 = +y, 4 = -z (bottom), 5 = +z (top).
Labels live per face because the room is one box seen from inside whose faces are different
things (walls, floor, ceiling); furniture boxes repeat one value on all six faces.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FACE_AXES: tuple[tuple[int, int], ...] = ((1, 2), (0, 2), (0, 1))
"""For a face on axis ``a``, the two in-plane axes ``FACE_AXES[a]`` (surface coordinates s, t)."""


@dataclass(frozen=True)
class BoxSet:
    """All boxes of a scene (B boxes). World frame: metres, z up.

    ``rotation[b]`` has the box's local axes as columns (world ← local); ``inside[b]`` marks the
    room box, seen from inside (rays hit its far side). Per-face arrays are (B, 6).
    """

    centre: np.ndarray  # (B, 3) float64
    rotation: np.ndarray  # (B, 3, 3) float64
    half: np.ndarray  # (B, 3) float64, half extents
    inside: np.ndarray  # (B,) bool
    nyu40: np.ndarray  # (B, 6) int32
    raw: np.ndarray  # (B, 6) int32, raw category id (label-filt value)
    instance: np.ndarray  # (B, 6) int32, 1.. (instance-filt value)
    part: np.ndarray  # (B, 6) int32, 0.., one id per box (per face for the room)
    hidden: np.ndarray  # (B, 6) bool, faces covered by other geometry: not tessellated
    colour: np.ndarray  # (B, 6, 3) float64, base RGB 0..1
    texture: np.ndarray  # (B, 6) int32, texture kind (categories.NOISE ...)
    tex_scale: np.ndarray  # (B, 6) float64, texture period in metres
    tex_seed: np.ndarray  # (B, 6) int64

    def __len__(self) -> int:
        return int(self.centre.shape[0])

    def corners(self, b: int) -> np.ndarray:
        """World coordinates (8, 3) of box ``b``'s corners."""
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
        return self.centre[b] + (signs * self.half[b]) @ self.rotation[b].T


def _per_face(value, dtype, trailing: tuple[int, ...] = ()) -> np.ndarray:
    arr = np.asarray(value, dtype=dtype)
    return np.broadcast_to(arr, (6,) + trailing).copy() if arr.shape != (6,) + trailing else arr.copy()


@dataclass
class BoxSetBuilder:
    """Accumulates boxes, then :meth:`build` freezes them into a :class:`BoxSet`."""

    _rows: list[dict] = field(default_factory=list)
    _next_part: int = 0

    def add(
        self,
        centre: np.ndarray,
        rotation: np.ndarray,
        half: np.ndarray,
        *,
        nyu40,
        raw,
        instance,
        colour,
        texture,
        tex_scale,
        tex_seed,
        hidden: tuple[int, ...] = (),
        inside: bool = False,
        part_per_face: bool = False,
    ) -> int:
        """Add one box; label/look arguments are scalars (all faces) or 6-vectors. Returns its index."""
        hidden_mask = np.zeros(6, dtype=bool)
        hidden_mask[list(hidden)] = True
        if part_per_face:
            part = np.arange(self._next_part, self._next_part + 6, dtype=np.int32)
            self._next_part += 6
        else:
            part = np.full(6, self._next_part, dtype=np.int32)
            self._next_part += 1
        self._rows.append(
            dict(
                centre=np.asarray(centre, dtype=np.float64),
                rotation=np.asarray(rotation, dtype=np.float64),
                half=np.asarray(half, dtype=np.float64),
                inside=bool(inside),
                nyu40=_per_face(nyu40, np.int32),
                raw=_per_face(raw, np.int32),
                instance=_per_face(instance, np.int32),
                part=part,
                hidden=hidden_mask,
                colour=_per_face(colour, np.float64, (3,)),
                texture=_per_face(texture, np.int32),
                tex_scale=_per_face(tex_scale, np.float64),
                tex_seed=_per_face(tex_seed, np.int64),
            )
        )
        return len(self._rows) - 1

    def build(self) -> BoxSet:
        """Stack the boxes added so far."""
        if not self._rows:
            raise ValueError("no boxes")
        cols = {k: np.stack([r[k] for r in self._rows]) for k in self._rows[0]}
        return BoxSet(**cols)
