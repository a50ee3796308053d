"""Default score cuts of pictures and results, shared by the API, the demos and the
visualisation hook (standard library only, so that ``--help`` can show them).

Text queries and exemplar queries score on different scales: an OWL box that
matches an exemplar cut from the image itself scores near 1, while a text
query's best boxes score a few tenths. One default for both left the
exemplar pictures full of boxes, hence two.
"""
DETECTION_THRESHOLD = 0.1   # text queries (the OWL-ViT / OWLv2 demos' value)
EXEMPLAR_THRESHOLD = 0.9    # exemplar (one-shot) queries
VISUALIZATION_THRESHOLD = DETECTION_THRESHOLD  # tools/test.py --show-dir pictures

__all__ = ['DETECTION_THRESHOLD', 'EXEMPLAR_THRESHOLD', 'VISUALIZATION_THRESHOLD']
