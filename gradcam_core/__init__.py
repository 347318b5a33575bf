"""gradcam_core: the logic of the Grad-CAM reproducibility report, one home per idea.

Files: :mod:`~gradcam_core.files` (atomic writing), :mod:`~gradcam_core.cli` (the command lines'
shared parts).
Inputs: :mod:`~gradcam_core.data` (the embedded files, fetched and verified, and typed dataset
loaders), :mod:`~gradcam_core.standins` (the stand-in networks trained here, their configurations
and checkpoints), :mod:`~gradcam_core.models` (the model registry), :mod:`~gradcam_core.training`
(training the stand-ins).
Explaining: :mod:`~gradcam_core.methods` (one class per explainer, one ``attribute()`` call,
``methods.create(name, model)``), :mod:`~gradcam_core.maps` (every post-processing of a map),
:mod:`~gradcam_core.metrics` (IoU, boxes, pointing, rank correlation, fidelity, ...),
:mod:`~gradcam_core.statistics` (intervals and paired tests that fit each statistic),
:mod:`~gradcam_core.attacks` (one-pixel, FGSM).
Tasks: :mod:`~gradcam_core.tasks` (one module per task of the report, each returning a typed
result), :mod:`~gradcam_core.runner` (resumable, sharded long runs), :mod:`~gradcam_core.study`
(the user study's survey).
Results files: :mod:`~gradcam_core.results` (tables on disk, reference numbers, provenance),
which tasks, runner and study write through; :mod:`~gradcam_core.claims` (the claims registry and
each claim's verdict, computed from the results files). Presentation: :mod:`~gradcam_core.tables` and
:mod:`~gradcam_core.figures` (what the pages show), :mod:`~gradcam_core.notebook` (the
notebooks' one-call setup); nothing below depends on them.
"""

__version__ = "0.2.0"
