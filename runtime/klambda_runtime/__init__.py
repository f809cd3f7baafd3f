"""klambda execution environments: the agent, the Lambda Runtime API, the built-in Python runtime."""
