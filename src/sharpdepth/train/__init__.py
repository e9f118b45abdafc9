"""Fine-tuning every family with its paper's loss: `sharpdepth finetune`.

settings (TrainSettings, the defaults) -> data (eval loaders as sources, scene splits,
depth-consistent augmentation, the family's pre-processing) -> objective/losses ->
loop (AdamW, warm-up + cosine, bf16 autocast, accumulation, DDP, validation) ->
checkpoint (official-layout safetensors + exact-resume trainer state).
"""
