"""Self-supervised training / fine-tuning of SSTrack models (decoupled forward-backward tracking
with an instance contrastive loss) on unlabeled footage."""

from trainer.clips import ClipSpec, NoUsableClipsError
from trainer.config import TrainConfig
from trainer.loop import StepReport, TrainingError, finetune

__all__ = ["ClipSpec", "NoUsableClipsError", "StepReport", "TrainConfig", "TrainingError", "finetune"]
