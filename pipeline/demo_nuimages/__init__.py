"""The procedural nuImages-format demo: single camera images of the nuScenes demo's streets, with
nuImages' tables and RLE-encoded object/surface annotations (``python -m pipeline demo-nuimages``)."""
