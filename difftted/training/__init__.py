"""Training the motion model: ``train`` (the command, ``accelerate launch -m difftted.train``), its
config (``train_config``), checkpoints (``train_state``) and the motion autoencoder (``motion_ae``)."""
