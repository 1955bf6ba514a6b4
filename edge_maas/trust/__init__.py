"""Update security, after The Update Framework (TUF): a root of trust that names the keys of
each role with a threshold and rotates by chained versions (`root.py`, built on python-tuf's
Metadata API), signed envelopes (`envelope.py`), key files (`keys.py`), and the device's gate
for signed desired states: authenticated, fresh, monotonic, rollback only by signed policy
(`desired.py`)."""
