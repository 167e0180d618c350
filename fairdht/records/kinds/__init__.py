"""Every record kind; importing this package fills the registry (one line per kind module)."""

from fairdht.records.kinds import anon_key as anon_key
from fairdht.records.kinds import anon_vote as anon_vote
from fairdht.records.kinds import checkpoint as checkpoint
from fairdht.records.kinds import chunk as chunk
from fairdht.records.kinds import content as content
from fairdht.records.kinds import delegation as delegation
from fairdht.records.kinds import karma as karma
from fairdht.records.kinds import keyset as keyset
from fairdht.records.kinds import match as match
from fairdht.records.kinds import outcome as outcome
from fairdht.records.kinds import referee as referee
from fairdht.records.kinds import rollback as rollback
from fairdht.records.kinds import seat as seat
from fairdht.records.kinds import server as server
