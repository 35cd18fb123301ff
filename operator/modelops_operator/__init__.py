"""kopf operator for ModelDeployment: renders the model-service chart, canaries, rolls back."""
