"""Makes this plugin folder a package so `python3 -m unittest discover -s plugins` finds its tests."""
