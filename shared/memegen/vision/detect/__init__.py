"""Face detection with MediaPipe's BlazeFace full-range model on the LiteRT runtime.

``FaceDetector.detect`` finds the faces of an image, small ones in big photos too, by
running the model over an image pyramid. Inside: ``plan`` (which model inputs run),
``blazeface`` (the model, its decoding and the merging of detections) and ``patch`` (the
model's flatbuffer rewritten for a whole level's shape). The face crop the classifiers see
is cut from a ``Face`` by ``memegen.vision.crop``.
"""

from memegen.vision.detect.blazeface import FULL_RANGE_FILE, FULL_RANGE_SHA256, Face, FaceDetector

__all__ = ["FULL_RANGE_FILE", "FULL_RANGE_SHA256", "Face", "FaceDetector"]
