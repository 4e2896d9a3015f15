"""The offline store: point-in-time correct training sets (the join, the registry API, manifests)."""

from featurelake.offline.pit import ViewInput, point_in_time_join

__all__ = ["ViewInput", "point_in_time_join"]
