"""The words the model was trained with: scene classes, answer vocabulary and count bins.

A small runtime module, so that the engine, region questions and the panel's presets do not
import the dataset reader or the training-question generator that produced these lists.
"""

from __future__ import annotations

AID_CLASSES = [
    "Airport", "BareLand", "BaseballField", "Beach", "Bridge", "Center", "Church", "Commercial",
    "DenseResidential", "Desert", "Farmland", "Forest", "Industrial", "Meadow",
    "MediumResidential", "Mountain", "Park", "Parking", "Playground", "Pond", "Port",
    "RailwayStation", "Resort", "River", "School", "SparseResidential", "Square", "Stadium",
    "StorageTanks", "Viaduct",
]
# Plain-English label text for each AID folder name (what a user would type).
AID_LABEL_TEXT = {
    "Airport": "airport", "BareLand": "bare land", "BaseballField": "baseball field",
    "Beach": "beach", "Bridge": "bridge", "Center": "center", "Church": "church",
    "Commercial": "commercial area", "DenseResidential": "dense residential area",
    "Desert": "desert", "Farmland": "farmland", "Forest": "forest",
    "Industrial": "industrial area", "Meadow": "meadow",
    "MediumResidential": "medium residential area", "Mountain": "mountain", "Park": "park",
    "Parking": "parking lot", "Playground": "playground", "Pond": "pond", "Port": "port",
    "RailwayStation": "railway station", "Resort": "resort", "River": "river",
    "School": "school", "SparseResidential": "sparse residential area", "Square": "square",
    "Stadium": "stadium", "StorageTanks": "storage tanks", "Viaduct": "viaduct",
}
DEFAULT_LABELS = [AID_LABEL_TEXT[c] for c in AID_CLASSES]

# Counts are binned as RSVQA does.
COUNT_BINS = ["0", "between 1 and 10", "between 11 and 100", "between 101 and 1000",
              "more than 1000"]
ANSWERS = ["yes", "no", *COUNT_BINS, "rural", "urban", *AID_LABEL_TEXT.values()]
QUESTION_TYPES = ("scene", "presence", "count", "rural_urban")
# Answers a question of each type may take; the answer head's argmax is restricted to these.
TYPE_ANSWERS = {
    "presence": ["yes", "no"],
    "count": COUNT_BINS,
    "rural_urban": ["rural", "urban"],
    "scene": list(AID_LABEL_TEXT.values()),
}


def count_bin(n: int) -> str:
    """The RSVQA count bin of an integer count."""
    if n <= 0:
        return COUNT_BINS[0]
    if n <= 10:
        return COUNT_BINS[1]
    if n <= 100:
        return COUNT_BINS[2]
    if n <= 1000:
        return COUNT_BINS[3]
    return COUNT_BINS[4]
