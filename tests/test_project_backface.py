"""The back-face test: vertices whose triangles all turn away from the camera are dropped."""

import numpy as np

from pipeline.project.backface import BackFaces, drop_back_faces


def _cube():
    """Unit cube as 12 outward-wound triangles (8 corners) plus two face-centre vertices and one
    vertex in no triangle: 0-7 corners, 8 = centre of the -x face, 9 = centre of +x, 10 = loose."""
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float64)
    xyz = np.concatenate([corners, [[0, 0.5, 0.5], [1, 0.5, 0.5], [5, 5, 5]]])
    quads = [(0, 1, 3, 2, 8), (4, 6, 7, 5, 9), (0, 4, 5, 1, None), (2, 3, 7, 6, None), (0, 2, 6, 4, None), (1, 5, 7, 3, None)]
    faces = []
    for a, b, c, d, centre in quads:
        if centre is None:
            faces += [(a, b, c), (a, c, d)]
        else:  # a fan around the face centre
            faces += [(centre, a, b), (centre, b, c), (centre, c, d), (centre, d, a)]
    faces = np.array(faces)
    mid = xyz[:8].mean(axis=0)  # make every triangle wind counter-clockwise seen from outside
    flip = np.einsum("ij,ij->i", np.cross(xyz[faces[:, 1]] - xyz[faces[:, 0]], xyz[faces[:, 2]] - xyz[faces[:, 0]]), xyz[faces].mean(axis=1) - mid) < 0
    faces[flip] = faces[flip][:, [0, 2, 1]]
    return xyz, faces


def test_vertices_facing_a_camera():
    xyz, faces = _cube()
    back = BackFaces(xyz, faces)
    facing = back.facing(np.arange(11), np.array([3.0, 0.5, 0.5]))  # camera on the +x side, facing only +x
    # the -x face's centre turns away; corners 0-3 (x = 0) touch only the -x face and the four
    # sides, which are seen edge-on (n . (c - m) = 0: not facing), so they go too; corners 4-7 and
    # the +x centre stay, and so does the vertex in no triangle
    np.testing.assert_array_equal(facing, [False] * 4 + [True] * 4 + [False, True, True])
    facing = back.facing(np.arange(11), np.array([3.0, 3.0, 0.5]))  # +x and +y faces visible
    assert facing[[2, 3]].all() and not facing[[0, 1, 8]].any()
    flipped = BackFaces(xyz, faces[:, [0, 2, 1]]).facing(np.array([8, 9, 9, 8]), np.array([3.0, 0.5, 0.5]))
    np.testing.assert_array_equal(flipped, [True, False, False, True])  # reversed winding inverts the test (the stage guards against it)


def test_drop_back_faces_keeps_csr_consistent():
    xyz, faces = _cube()
    back = BackFaces(xyz, faces)
    poses = np.tile(np.eye(4), (3, 1, 1))
    poses[0, :3, 3] = [3.0, 0.5, 0.5]
    poses[2, :3, 3] = [-3.0, 0.5, 0.5]
    offsets = np.array([0, 4, 4, 7])  # view 1 has no pairs
    point = np.array([0, 4, 8, 9, 0, 4, 10])
    pixel = np.arange(7) * 10
    new_offsets, new_point, new_pixel, removed = drop_back_faces(back, poses, offsets, point, pixel)
    np.testing.assert_array_equal(new_offsets, [0, 2, 2, 4])
    np.testing.assert_array_equal(new_point, [4, 9, 0, 10])
    np.testing.assert_array_equal(new_pixel, [10, 30, 40, 60])
    assert removed == 3
    trailing = drop_back_faces(back, poses, np.array([0, 2, 2, 2]), point[:2], pixel[:2])  # empty last views
    np.testing.assert_array_equal(trailing[0], [0, 1, 1, 1])
    empty = drop_back_faces(back, poses, np.zeros(4, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    np.testing.assert_array_equal(empty[0], [0, 0, 0, 0])


def _brute_force(xyz, faces, vertices, centre):
    """Per vertex, loop over every triangle containing it (the rule, written plainly)."""
    out = []
    for v in vertices:
        tris = [f for f in faces if v in f]
        if not tris:
            out.append(True)
            continue
        seen = False
        for a, b, c in tris:
            n = np.cross(xyz[b] - xyz[a], xyz[c] - xyz[a])
            seen |= float(n @ (centre - (xyz[a] + xyz[b] + xyz[c]) / 3.0)) > 0
        out.append(seen)
    return np.array(out)


def test_high_degree_vertices_and_random_meshes_match_the_rule():
    """A fan of 14 triangles around one vertex (more than the padded table holds: the facing ones
    are the last listed) and random triangle soups, against a plain loop over triangles."""
    angles = np.linspace(0, 2 * np.pi, 15)[:-1]
    rim = np.stack([np.cos(angles), np.sin(angles), np.zeros(14)], axis=1)
    xyz = np.concatenate([[[0.0, 0.0, 0.0]], rim])
    faces = np.array([(0, 1 + i, 1 + (i + 1) % 14) for i in range(14)])  # normals +z
    faces[:12] = faces[:12][:, [0, 2, 1]]  # the first 12 triangles turn to -z: only the last 2 face +z
    back = BackFaces(xyz, faces)
    assert back.count[0] == 14
    for centre in (np.array([0.2, 0.1, 3.0]), np.array([0.2, 0.1, -3.0])):
        np.testing.assert_array_equal(back.facing(np.arange(15), centre), _brute_force(xyz, faces, range(15), centre))
    assert back.facing(np.array([0]), np.array([0.0, 0.0, 3.0]))[0]  # only through the CSR tail
    rng = np.random.default_rng(0)
    for _ in range(5):
        xyz = rng.normal(size=(30, 3))
        faces = np.array([rng.choice(30, 3, replace=False) for _ in range(rng.integers(20, 120))])
        back = BackFaces(xyz, faces)
        centre = rng.normal(size=3) * 4
        vertices = rng.integers(0, 30, 50)
        np.testing.assert_array_equal(back.facing(vertices, centre), _brute_force(xyz, faces, vertices, centre))
