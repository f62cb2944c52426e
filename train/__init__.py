"""Training pipeline: data loading, model builders, training and evaluation (needs TensorFlow)."""
