"""Edge runner: classify skin-lesion images on a Raspberry Pi-class device.

This package imports only numpy, OpenCV and one inference runtime. It never imports
TensorFlow: the training and export packages build on it, not the other way round.
Research and education tool only; not a medical device.
"""

DISCLAIMER = (
    "Research/education tool, NOT a medical device: it does not diagnose; see a clinician."
)
