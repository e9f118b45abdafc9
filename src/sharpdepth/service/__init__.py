"""`sharpdepth serve`: the library as an HTTP service with batching, back-pressure and a web page.

The service is a third face of the same core as the library and the CLI: it
builds the same settings objects (`engine.settings.ModelSettings`,
`FocalSettings`, `io.outputs.OutputOptions`, the effects' settings) and calls
the same engine and writers, so `/v1/depth?format=npz` returns the file
`sharpdepth predict` writes. Importing this package does not import torch;
`create_app` (in `service.app`) does.
"""

from __future__ import annotations

from .settings import API_KEY_ENV, ServeSettings, api_key_from_env

__all__ = ["API_KEY_ENV", "ServeSettings", "api_key_from_env"]
