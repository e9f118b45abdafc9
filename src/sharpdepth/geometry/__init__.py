"""Metric geometry from a depth result: pinhole camera, normals, point clouds/meshes, measuring.

See `camera` for the conventions (pixel centres, principal point, z-depth,
camera axes) that every module here and in `sharpdepth.apps` shares.
"""
