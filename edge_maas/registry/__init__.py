"""The central registry: content-addressed blob store, metadata, MQTT service."""
