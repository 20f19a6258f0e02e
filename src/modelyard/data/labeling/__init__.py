"""Data labeling: jobs opened on a dataset version or on uploaded images, a queue of items with states, manual and
model-proposed labels, team review, and publishing the result as the next immutable dataset version.

* :mod:`.model`: the values (job, item, proposal) and the rules that need no database;
* :mod:`.service`: :class:`LabelingStore`, the one entry point the REST API, SDK, CLI and console call;
* :mod:`.team`: members, assignment, review, per-labeler figures and the pre-labeling verdict;
* :mod:`.publish`: the next dataset version with lineage per item;
* :mod:`.labelstudio`: Label Studio's label config and prediction shapes.

Pre-labeling with a registered model (the ``label.propose`` job kind) lives in ``modelyard.deploy.prelabel``: it
needs the model registry, which this package may not import.
"""

from modelyard.data.labeling.model import Actor, LabelingJob, LabelItem, Proposal
from modelyard.data.labeling.service import LabelingStore

__all__ = ["Actor", "LabelItem", "LabelingJob", "LabelingStore", "Proposal"]
