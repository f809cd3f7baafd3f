"""klambda."""
