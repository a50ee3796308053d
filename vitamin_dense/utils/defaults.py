"""Default score cuts of pictures and results, shared by the API, the demos and the
visualisation hook (standard library only, so that ``--help`` can show them).

Text queries and exemplar queries score on different scales: an OWL box that
matches an exemplar scores near 1, while a text query's true boxes score a few
tenths. Measured on the trained tiny OWL config (6,000 iterations, held-out AP
0.38; 20 held-out images of 2.1 shapes each, one label per box):

* text queries: at 0.1, 1.4 true and 2.1 false boxes per image; at 0.2, the
  same 1.4 true and 0.9 false; at 0.3, 1.2 true and 0.5 false;
* exemplar queries (a box of the same class from another image): at 0.1, 1.6
  true and 25.5 false boxes; at 0.5, 1.4 and 2.1; at 0.8, 1.2 and 0.6; at 0.9,
  0.9 and 0.2.

(with class-wise NMS and several labels per box, 0.1 gave 15.6 boxes per image,
3.2 labels per box). One default for both kinds left exemplar pictures full of
boxes, hence two.
"""
DETECTION_THRESHOLD = 0.2   # text queries
EXEMPLAR_THRESHOLD = 0.8    # exemplar (one-shot) queries
VISUALIZATION_THRESHOLD = DETECTION_THRESHOLD  # tools/test.py --show-dir pictures

__all__ = ['DETECTION_THRESHOLD', 'EXEMPLAR_THRESHOLD', 'VISUALIZATION_THRESHOLD']
