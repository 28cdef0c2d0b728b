"""bl931 engine: the declarative reconciler. Never imports a UI toolkit."""
