"""The report's tasks, one module each; every runner returns a typed result (a
:class:`~gradcam_core.tasks.common.TaskRun` dataclass: the per-image ``table``, the ``skipped``
unreadable images and the wall time in ``seconds``; figure data as dataclasses too).

- :mod:`.localization` -- Task 1, weakly-supervised localisation (paper Sec. 4.1, Table 1)
- :mod:`.pointing` -- Task 2, the pointing game (paper Sec. 4.3)
- :mod:`.occlusion` -- Task 3, faithfulness: rank correlation with occlusion maps (Sec. 5.3)
- :mod:`.user_study` -- Task 4, the trust study's stimuli and the analysis of its ratings (Sec. 5.2)
- :mod:`.chest_xray` -- Task 5, maps against radiologist boxes on chest X-rays
- :mod:`.sensitivity` -- Task 6, one-pixel and FGSM attacks
- :mod:`.fidelity` -- Task 7, fidelity and contrastivity (Pope et al. 2019) on MNIST and CIFAR-10
- :mod:`.common` -- what the runners share: batched loading that skips bad images, precision,
  explainers with the tasks' settings
"""
