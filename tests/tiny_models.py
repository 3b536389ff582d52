"""Reduced configs of every registered model, shared by the tests."""

from __future__ import annotations

from typing import Any

#: A reduced builder config per model (tiny widths, few blocks, so that a forward pass is cheap)
#: and the patch size of the smoke test (a multiple the model accepts).
TINY_MODELS: dict[str, tuple[dict[str, Any], int]] = {
    "prenet": ({"stages": 2, "channels": 4}, 32),
    "prenet_r": ({"stages": 2, "channels": 4}, 32),
    "prn": ({"stages": 2, "channels": 4}, 32),
    "prn_r": ({"stages": 2, "channels": 4}, 32),
    "prenet_real": ({"stages": 2, "channels": 4}, 32),
    "remaen": ({"stages": 2, "channels": 8}, 32),
    "codenet": ({"channels": 8, "code_channels": 16, "reduction": 4, "iterations": 2}, 32),
    "mcodenet": ({"channels": 4, "code_channels": 8, "reduction": 2, "iterations": 2}, 32),
    "dtpnet": (
        {
            "recurrent_iter": 2,
            "dim": 8,
            "num_blocks": [1, 1, 1, 1],
            "num_refinement_blocks": 1,
            "heads": [1, 1, 1, 1],
        },
        32,
    ),
    "mprnet": ({"n_feat": 8, "scale_unetfeats": 4, "scale_orsnetfeats": 4, "num_cab": 1}, 32),
    "pcnet": ({"n_feat": 8, "num_crb": 1, "num_rcab": 1}, 32),
    "restormer": (
        {"dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1, "heads": [1, 1, 1, 1]},
        32,
    ),
    "spair": ({"width": 8, "blocks": 1, "loc_width": 4, "loc_blocks": 1}, 32),
    "rainunet": (
        {
            "levels": 2,
            "widths": [4, 8, 8],
            "middle_blocks": 1,
            "encoder_blocks": [1, 1],
            "decoder_blocks": [1, 1],
        },
        32,
    ),
    # No width options (the official networks are fixed). crdnet's classifier needs 512x512
    # inputs, so its recipe is smoke-tested on crdnet_anysize (same network and losses) at the
    # smallest size that one accepts, 128.
    "crdnet_anysize": ({"density": True}, 128),
    # didmdn's classifier works at 512x512 (a 65M-parameter Linear layer): its recipe is
    # smoke-tested on the deraining network alone, without the density loss.
    "didmdn_derain": ({}, 32),
}
