"""Copy a trained sstrack-lite into resources/models/ with its card, recording where it came from.

    python trainer/recipes/ship_default.py RUN_DIR [--checkpoint STEP] [--recipe trainer/recipes/X.sh] [--metrics M.json]

Without --checkpoint the run's final model.safetensors is shipped; with it, the checkpoint of
that step (an interim model while the recipe run is still going), and the card says so.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

TARGET = Path(__file__).resolve().parents[2] / "resources" / "models"


def main() -> None:
    """Ship the model."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--checkpoint", type=int, default=None)
    parser.add_argument("--metrics", type=Path, default=None, help="JSON of measured scores to put in the card")
    parser.add_argument("--recipe", default="trainer/recipes/sstrack_lite_default.sh", help="the recipe that trained the run")
    args = parser.parse_args()
    if args.checkpoint is None:
        source = args.run / "model.safetensors"
    else:
        source = args.run / "checkpoints" / f"step_{args.checkpoint:07d}.safetensors"
    card = json.loads(source.with_suffix(".json").read_text())
    card["weights"] = "sstrack-lite.safetensors"
    card["shipped_from"] = {
        "run": str(args.run),
        "file": source.name,
        "interim": args.checkpoint is not None,
        "recipe": args.recipe,
    }
    parent = Path(str(card.get("parent", "")))
    if parent.suffix == ".safetensors" and parent.with_suffix(".json").is_file():
        # The parent file may be replaced by this very copy: keep its identity in the card.
        card["parent_sha256"] = json.loads(parent.with_suffix(".json").read_text()).get("sha256")
    if args.metrics:
        card["metrics"] = json.loads(args.metrics.read_text())
    TARGET.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, TARGET / "sstrack-lite.safetensors")
    (TARGET / "sstrack-lite.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"shipped {source} -> {TARGET / 'sstrack-lite.safetensors'}")


if __name__ == "__main__":
    main()
