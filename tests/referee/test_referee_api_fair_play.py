"""``GET /api/referees`` computes clusters from seats as the command does, and says why none."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from apikit import NET, api_nodes, key, put_all, run

from fairdht.records.kinds.referee import RefereeOffer
from fairdht.referee.clusters import sign_seat
from fairdht.referee.offers import sign_offer

CODE = hashlib.blake2b(b"fair play api bundle", digest_size=32).digest()


def test_api_reads_seats_and_explains_an_empty_answer(tmp_path: Path) -> None:
    a, b, newcomer = (key(n).public_key.raw for n in ("fp-a", "fp-b", "fp-new"))
    sneaky, honest = key("fp-sneaky"), key("fp-honest")
    now = time.time()
    records = [
        # sneaky plays a live match with a and b, and offers declaring nobody.
        sign_seat(
            sneaky,
            NET,
            "live-1",
            players=(a, b, sneaky.public_key.raw),
            code_hash=CODE,
            now=now,
        ),
        sign_offer(sneaky, NET, CODE, RefereeOffer("Z", (), "127.0.81.1:9000"), now=now),
        sign_offer(honest, NET, CODE, RefereeOffer("h", (), "127.0.81.2:9000"), now=now),
    ]

    async def body() -> None:
        async with api_nodes(tmp_path) as (one, two):
            assert await put_all(one, records) == 3
            players = ",".join(p.hex() for p in sorted([a, newcomer]))
            doc = await two.json(
                f"/api/referees/{CODE.hex()}?network={NET}&players={players}&count=5&explain=1"
            )
            assert [r["referee"] for r in doc["referees"]] == [honest.public_key.hex()]
            fates = {c["referee"]: (c["status"], c["reason"]) for c in doc["candidates"]}
            assert fates[sneaky.public_key.hex()] == ("dropped", "cluster_shares_player")
            assert "error" not in doc
            none = await two.json(f"/api/referees/{'11' * 32}?network={NET}&players={players}")
            assert none["referees"] == []
            assert none["error"] == "no eligible referee was found for this code hash"

    run(body)
