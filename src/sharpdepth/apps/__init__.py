"""Effects rendered from a photo and its depth: `dof` (refocus), `portrait`, `parallax` (3D-photo
video), `stereo` (pairs, anaglyphs). `warp` holds the shared novel-view renderer, `common` the
image operations (linear light, pull-push filling, bokeh kernels, guided filter).
"""
