"""moto's server for the tests, with DynamoDB's atomicity restored.

moto serves requests on threads and applies a conditional write or a TransactWriteItems as a
check followed by separate updates, with no lock between requests; so two transactions racing
on one item (two owners demoting each other, two edits of one machine) can both pass their
conditions, which real DynamoDB never allows: its conditional writes are atomic and its
transactions serializable. The race tests exist to prove our conditions hold under that
guarantee, so the emulator has to give it. This launcher runs moto's own server with every
DynamoDB backend operation under one lock, which makes each request atomic against the others
(reads included, so none sees half a transaction). Nothing else about moto changes.

usage: python moto_server.py -H 127.0.0.1 -p PORT   (the arguments of `moto_server`)
"""

import functools
import inspect
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_LOCK = threading.RLock()


def _serialized(operation):
    @functools.wraps(operation)
    def run(*args, **kwargs):
        with _LOCK:
            return operation(*args, **kwargs)

    return run


for _name, _member in list(vars(DynamoDBBackend).items()):
    if inspect.isfunction(_member) and not _name.startswith("_"):
        setattr(DynamoDBBackend, _name, _serialized(_member))

if __name__ == "__main__":
    main()
