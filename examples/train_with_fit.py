"""Train a tfderain model with your own ``model.fit`` call: no tfderain trainer involved.

    python examples/train_with_fit.py                       # RainUNet from scratch, 2 x 20 steps
    python examples/train_with_fit.py --model prn_r:rain100l --epochs 1 --steps 10   # fine-tune

Clean photos get synthetic rain from ``tfderain.data`` (here scikit-image's bundled photos; give
``--clean FOLDER`` for your own, or use ``tfderain.data.paired_dataset`` on a rainy/clean dataset).
"""

import argparse

import tfderain
from tfderain import data, losses, models
from tfderain._keras import keras
from tfderain.data.photos import skimage_photos

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="rainunet", help="an architecture, or a preset to fine-tune")
parser.add_argument("--clean", help="a folder of clean photos (default: scikit-image's)")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("-o", "--output", default="fit_example.keras")
args = parser.parse_args()

# A model: built from an architecture name (random weights), or a preset's trained weights.
is_preset = ":" in args.model
model = tfderain.load_model(args.model) if is_preset else tfderain.build_model(args.model)
multiple = models.spec_of(model).multiple

# A tf.data pipeline of (rainy, {"derained": clean}) batches.
clean = args.clean or skimage_photos()
patch = max(multiple, 64 // multiple * multiple)
stream = data.synthetic_dataset(clean, patch_size=patch, batch_size=4, seed=0)
pairs = data.as_training_pairs(stream)

model.compile(
    optimizer=keras.optimizers.Adam(1e-4 if is_preset else 1e-3),
    loss={"derained": losses.get("charbonnier_ssim")},  # brightness and structure
)
model.fit(
    pairs,
    epochs=args.epochs,
    steps_per_epoch=args.steps,
    callbacks=[keras.callbacks.TerminateOnNaN(), keras.callbacks.CSVLogger("fit_example.csv")],
    verbose=2,
)
tfderain.save_model(model, args.output)
print(f"trained {model.count_params():,} parameters; saved {args.output}")
