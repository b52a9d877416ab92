"""LesionOps serving: the FastAPI app (`create_app`), its durable store and the expert-review API."""
