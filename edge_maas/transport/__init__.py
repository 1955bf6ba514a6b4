"""MQTT transport: a paho-mqtt 2.x client wrapper, message frames, chunked blob transfer.

Topics are defined in topics.py and documented in docs/protocol.md.
"""
