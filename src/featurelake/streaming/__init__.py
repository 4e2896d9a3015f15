"""Streaming features: Kafka events of a stream source computed into window views as they arrive (Spark Structured
Streaming, micro-batches written exactly once to the view's Delta tables and the online store), parsed and refused
events (events.py), the engine (engine.py), rows pushed by a call or the feature server (push.py), the lag of each
streaming view from its batch records (lag.py)."""
