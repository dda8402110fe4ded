"""`python -m streams.core.settings > .env.example`."""

from streams.core.settings import render_env_example

print(render_env_example(), end="")
