"""Learning: classifiers and their grid search, the operating point, the saved artifact, prediction, evaluation."""
