"""The built-in nuScenes demo: procedural street scenes written in the nuScenes v1.0 format (v1.0-mini).

Modules, one job each:

* :mod:`~pipeline.demo_nuscenes.spec` — version, scene names (official mini splits), channels,
  defaults, tokens and seeds (standard library only).
* :mod:`~pipeline.demo_nuscenes.categories` — the 32 lidarseg fine classes and the materials.
* :mod:`~pipeline.demo_nuscenes.geometry` — quaternions, T(t, q), the devkit's lidar → camera chain.
* :mod:`~pipeline.demo_nuscenes.rig` — calibrated sensors of a log and the cameras' firing delays.
* :mod:`~pipeline.demo_nuscenes.timeline` — logs and keyframe timestamps.
* :mod:`~pipeline.demo_nuscenes.trajectory` — the ego's drive and the street's global placement.
* :mod:`~pipeline.demo_nuscenes.parts` — boxes with fine class, instance and material; BoxSet helpers.
* :mod:`~pipeline.demo_nuscenes.street` — road, markings, flats, buildings, trees, posts.
* :mod:`~pipeline.demo_nuscenes.shapes` — object models (vehicles, people, cycles, barriers, cones).
* :mod:`~pipeline.demo_nuscenes.placement` — where objects go (zones, the guaranteed cast).
* :mod:`~pipeline.demo_nuscenes.world` — a scene's static world plus the moving ego body.
* :mod:`~pipeline.demo_nuscenes.culling` — boxes in a camera's frustum.
* :mod:`~pipeline.demo_nuscenes.lidar` — the spinning lidar's ray cast, intensity and rings.
* :mod:`~pipeline.demo_nuscenes.render` — camera images and per-pixel fine labels.
* :mod:`~pipeline.demo_nuscenes.truth` — which lidar points each camera truly sees (test ground truth).
* :mod:`~pipeline.demo_nuscenes.defects` — a missing image and a non-unit quaternion, on request.
* :mod:`~pipeline.demo_nuscenes.files` — writers of the file formats.
* :mod:`~pipeline.demo_nuscenes.scene` — one scene end to end.
* :mod:`~pipeline.demo_nuscenes.tables` — the 13 tables and lidarseg.json.
* :mod:`~pipeline.demo_nuscenes.generate` — the dataset, atomically, scenes in parallel.
* :mod:`~pipeline.demo_nuscenes.cli` — ``python -m pipeline demo-nuscenes``.
"""
