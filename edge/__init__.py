"""Edge runner: classify skin-lesion images on a Raspberry Pi-class device.

This package imports only numpy, OpenCV and one inference runtime. It never imports
TensorFlow: the training and export packages build on it, not the other way round.
Research and education tool only; not a medical device.
"""

from core import DISCLAIMER  # noqa: F401  (the one text; edge outputs name it edge.DISCLAIMER)
