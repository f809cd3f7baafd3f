"""klambda's built-in Python runtime.

Standard library only (no grpc, no aiohttp): it is imported by the zygote and forked into
every Python environment, and it talks to the agent exclusively through the Lambda
Runtime API over HTTP, exactly like awslambdaric, so the two are interchangeable.
"""
