"""promote_model: register the challenger and move the `champion` alias, only after a passed gate."""
