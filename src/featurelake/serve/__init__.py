"""Long-running servers over featurelake's data: the HTTP feature server (:mod:`featurelake.serve.online`)."""
