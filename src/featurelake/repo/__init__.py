"""The feature repository: definitions as code (entities, sources, views, services), loading a features folder
and checking it (references, schemas against the catalog and dbt), the registry specs, their diff and lineage.

``definitions`` holds the classes a ``features/<domain>/`` folder builds; ``loader`` imports such a folder into a
checked :class:`Repo`; ``schema`` checks it against the data; ``specs``, ``diff``, ``lineage`` and ``plan`` turn it
into what the registry (:mod:`featurelake.registry`) stores.
"""

from featurelake.repo.loader import DefinitionError, Repo, feature_repo, load_repo

__all__ = ["DefinitionError", "Repo", "feature_repo", "load_repo"]
