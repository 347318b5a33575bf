"""gradcam_core: the logic of the Grad-CAM reproducibility report.

Modules, one concern each:

- :mod:`gradcam_core.data`    -- the embedded files (fetch, verify) and typed dataset loaders
- :mod:`gradcam_core.models`  -- the model registry (architecture, weights, preprocessing, layer)
- :mod:`gradcam_core.methods` -- explanation methods with one ``attribute()`` call, and the
  one map normaliser
"""

__version__ = "0.1.0"
