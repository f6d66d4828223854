"""Self-supervised training / fine-tuning of SSTrack models (decoupled forward-backward tracking
with an instance contrastive loss) on unlabeled footage."""

from trainer.adapt import ROUND_EVERY, AdaptResult, adapt_video
from trainer.clips import ClipSpec, NoUsableClipsError
from trainer.config import TrainConfig
from trainer.loop import StepReport, TrainingError, finetune

__all__ = ["ROUND_EVERY", "AdaptResult", "ClipSpec", "NoUsableClipsError", "StepReport", "TrainConfig", "TrainingError",
           "adapt_video", "finetune"]
