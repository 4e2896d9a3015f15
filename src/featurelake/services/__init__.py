"""The local services the repository installs (``make setup``), starts and stops (``featurelake services``,
``make up`` / ``make down``): each a real process on loopback, reused when running, stopped by its recorded pid.

Today: PostgreSQL (postgres.py), the database of the Hive metastore that every Spark driver on the machine shares;
metastore.py checks that the configured metastore is reachable before a driver starts; derby_migration.py moves an
embedded Derby catalog (the default before) into the configured metastore; s3.py, the local S3-compatible object store
(S3Proxy) for ``s3a://`` paths; spark_cluster.py, the Spark standalone master and workers of
``FEATURELAKE_ENV=cluster``; redis.py, a durable Redis server (the cluster environment's online store); kafka.py, a
Kafka broker (one KRaft node) for the streaming features.
"""
