"""Real-world defects of a nuScenes copy, injected on request (``--defects``).

* a missing image: one camera keyframe's JPEG is absent although its ``sample_data`` record
  exists (readers must skip the view, not the sample);
* a non-unit quaternion: one camera's ``calibrated_sensor.rotation`` is written scaled by 0.8-0.9
  or 1.1-1.25 (readers must normalise; the devkit's pyquaternion does).

Drawn from their own random stream: the dataset is otherwise byte-identical to the clean one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.demo_nuscenes import spec


@dataclass(frozen=True)
class Defects:
    """(scene, keyframe, channel) of the missing image; (scene, channel, factor) of the scaled rotation."""

    missing_image: tuple[str, int, str] | None = None
    scaled_rotation: tuple[str, str, float] | None = None

    def skipped(self, scene: str) -> frozenset[tuple[int, str]]:
        """(keyframe, channel) pairs of ``scene`` whose image is not written."""
        if self.missing_image is None or self.missing_image[0] != scene:
            return frozenset()
        return frozenset({self.missing_image[1:]})

    def rotation_factor(self, scene: str, channel: str) -> float:
        """What ``scene``'s ``channel`` calibrated rotation is multiplied by when written (1.0 if clean)."""
        if self.scaled_rotation is not None and self.scaled_rotation[:2] == (scene, channel):
            return self.scaled_rotation[2]
        return 1.0

    def as_dict(self) -> dict[str, list]:
        """JSON form: ``missing_images`` [[scene, keyframe, channel]], ``non_unit_rotations`` [[scene, channel, factor]]."""
        return {
            "missing_images": [list(self.missing_image)] if self.missing_image else [],
            "non_unit_rotations": [list(self.scaled_rotation)] if self.scaled_rotation else [],
        }


def draw_defects(seed: int, scenes: list[str], samples: int) -> Defects:
    """One missing image and one scaled camera rotation, anywhere in ``scenes``."""
    rng = np.random.default_rng(spec.scene_seed(seed, "dataset", "defects"))
    image = (str(rng.choice(scenes)), int(rng.integers(0, samples)), str(rng.choice(spec.CAMERAS)))
    factor = float(rng.uniform(0.8, 0.9) if rng.random() < 0.5 else rng.uniform(1.1, 1.25))
    rotation = (str(rng.choice(scenes)), str(rng.choice(spec.CAMERAS)), round(factor, 4))
    return Defects(image, rotation)
