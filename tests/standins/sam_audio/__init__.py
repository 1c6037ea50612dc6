"""Stand-in for ``sam_audio`` (github facebookresearch/sam-audio) with its real API.

Only for tests: no weights, no network. The API mirrors the real package
(``sam_audio/model/model.py``, ``processor.py``, ``model/base.py`` at 68b48d4):

- ``SAMAudio.from_pretrained(id_or_dir, **overrides)``: overrides replace config keys that
  exist (``text_ranker``, ``visual_ranker``, ``span_predictor``…), others are ignored. The
  model comes back in training mode, fp32, on the CPU, like the real one.
- ``SAMAudioProcessor.from_pretrained(id_or_dir)``: ``audio_sampling_rate`` 48000,
  ``audio_hop_length`` 1920.
- ``processor(descriptions=[…], audios=[path or (C, T) tensor])`` -> ``Batch`` with
  ``.to(device)``, ``.audios`` (B, 1, T) zero padded, ``.sizes`` in latent frames
  ``ceil(T / 1920)``. Audio is downmixed (``mean(0)``); a 1-D tensor raises the real
  ``IndexError``; no dtype cast (a bf16 model given float32 audio raises the real
  ``RuntimeError: Input type (float) and bias type (c10::BFloat16) should be the same``).
- ``model.separate(batch, noise=None, ode_opt=…, reranking_candidates=1,
  predict_spans=False)`` -> result with ``.target`` / ``.residual``: lists of 1-D tensors of
  ``frames * 1920`` samples each (longer than the input, like the real one), in the
  model's dtype. Noise comes from ``torch.randn_like`` when not given (seed the global RNG).
- Span prompts (anchors.py): ``processor(…, anchors=[[["+"|"-", start_s, end_s], …]])``
  builds the real ``anchor_ids`` / ``anchor_alignment`` (``Batch.process_anchors``); the
  model's target is the input on ``+`` frames and silence on ``-`` frames. With a span
  predictor in the config: ``model._get_audio_features``, ``model.predict_spans`` and the
  PE-A-Frame call shape, deterministic (frames whose RMS exceeds ``SAM_STANDIN_SPAN_LEVEL``,
  default 0.05); ``separate(predict_spans=True)`` predicts but changes nothing, like the pin
  (upstream #98).
- The real limits, with torch's own errors: the batch is reflect-padded to a whole latent
  frame like the real codec (``codec.py`` ``_pad``), which raises ``RuntimeError`` when it
  holds at most 960 samples; more than 10000 latent frames (400 s) in one pass raise the
  ``RuntimeError`` of the real RoPE (``rope.py``, ``max_positions``).

- Visual prompts (``_video.py``): ``processor.mask_videos(videos, masks)`` and
  ``processor(..., masked_videos=...)`` with the real signatures and tensor branch (one frame
  per latent frame by ``linspace``); a vision encoder in the model's dtype (a bf16 model
  given float32 frames raises torch's real error); the target gains ``VIDEO_GAIN`` times
  each latent frame's masked-frame mean, exactly.

Behaviour, chosen by environment variables (read at each call):

- ``SAM_STANDIN_MODE``: ``dsp`` (default) a deterministic FIR split chosen by the
  description: a lowpass (< 300 Hz) target for descriptions containing "bass", a highpass
  target otherwise; plus ``SAM_STANDIN_NOISE`` (default 1e-3) times the RNG noise, so that
  unseeded runs differ and seeded runs are identical. ``lti``: one fixed FIR lowpass for
  every description and no noise: linear and time-invariant, for the chunk-seam test.
  In both modes ``target + residual == input`` (up to the dtype's rounding).
- ``SAM_STANDIN_OOM_ABOVE=N``: ``separate`` raises ``torch.cuda.OutOfMemoryError`` when
  ``batch size * padded samples * reranking_candidates`` exceeds N.
- ``SAM_STANDIN_FAIL``: ``gated`` (``GatedRepoError``), ``missing``
  (``RepositoryNotFoundError``), ``auth`` (``HfHubHTTPError`` with status 401) or
  ``offline`` (``LocalEntryNotFoundError``: not cached and no Hub reachable), raised by
  both ``from_pretrained``; these are the real huggingface_hub classes. Model ids that are
  not ``facebook/sam-audio-*`` and not a directory with a ``config.json`` always raise
  ``RepositoryNotFoundError``, like the Hub. A directory without ``checkpoint.pt`` makes
  ``SAMAudio.from_pretrained`` raise ``FileNotFoundError`` (the real one torch.loads it).
- ``SAM_STANDIN_HUB=1``: hub ids load the way the real code reads the Hub (``_hub.py``):
  ``snapshot_download`` of the model (config.json + checkpoint.pt), then after the
  overrides the text encoder (transformers' files), the span predictor
  (``facebook/<name>@perception_models``), the rankers (``laion_clap`` import + CLAP
  weights + roberta-base; the judge ``@sam_audio`` + its main-branch tokenizer; ImageBind
  into ``./.checkpoints``): offline (``HF_HUB_OFFLINE``) only from the cache.
- ``SAM_STANDIN_LOAD_LOG=path``: each ``SAMAudio.from_pretrained`` appends one JSON line
  (``model``, ``overrides``, ``pid``): tests count loads and check switched-off parts; each
  ranker built adds ``{"ranker_built": kind}``, each judge load ``{"judge": id}``.
- Rankers (``ranking/``, the real module names): ``SAMAudio`` builds what its config names
  (default: a judge text ranker and an ImageBind visual ranker) unless overridden with None;
  ``separate`` with ``reranking_candidates=N`` makes N candidates (differing by their noise)
  and keeps the argmax of the visual ranker (with a masked video) or the text ranker, else
  candidate 0 — the real rule. ``SAM_STANDIN_IMAGEBIND=1``: ImageBind counts as installed.
- Judge (``judge.py``, ``processor.SAMAudioJudgeProcessor``): see judge.py for the score
  formula and limits. ``SAM_STANDIN_UNCACHED=id,…`` / ``SAM_STANDIN_GATED=id,…``: loading
  those repos (e.g. ``facebook/sam-audio-judge``) raises the real LocalEntryNotFoundError /
  GatedRepoError.
- ``SAM_STANDIN_SECONDS_PER_SECOND=x``: ``separate`` sleeps x seconds per second of audio
  in the batch (slows a job down so tests can kill links mid-run).
- ``SAM_STANDIN_HOLD=path``: ``separate`` waits while that file exists (a test holds an
  item on the "GPU" for as long as it needs, whatever the machine's load).
"""

from .judge import SAMAudioJudgeModel, SAMAudioJudgeOutput
from .model import SAMAudio, SeparationResult
from .processor import Batch, SAMAudioJudgeProcessor, SAMAudioProcessor

IS_STANDIN = True

__all__ = ["SAMAudio", "SAMAudioProcessor", "Batch", "SeparationResult", "IS_STANDIN",
           "SAMAudioJudgeModel", "SAMAudioJudgeOutput", "SAMAudioJudgeProcessor"]
