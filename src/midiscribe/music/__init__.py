"""Musical structure from notes and model outputs: the beat grid, the key, quantization.

Pure, like ``core`` (which it builds on): notes and posteriorgrams in, musical structure out.
``formats`` only serializes what this package finds; the service and the CLI call it.
"""
