"""The patch classifier's library: networks, patch tables, preprocessing-aware loaders, the training
loop, checkpoints and weights. train_model runs it once on the training split; crossval runs the
same code per fold; evaluate_model and serving rebuild and score its networks."""
