"""The single-event ingest ceiling: the same server stack and JSON parsing, no storage.

``python -m bench.bare --port P`` serves POST /api/v1/logs and /api/v1/logs/bulk that
validate the body with the service's own schemas and answer 201, so the gap between this
and the real service is exactly what authentication, masking, hashing and storing cost.
"""

from __future__ import annotations

import argparse
import uuid

import uvicorn
from fastapi import FastAPI, status

from auditline.api.schemas import BulkIn, EventIn

app = FastAPI()


@app.post("/api/v1/logs", status_code=status.HTTP_201_CREATED)
async def create(body: EventIn) -> dict[str, str]:
    return {"id": str(body.id or uuid.uuid4())}


@app.post("/api/v1/logs/bulk", status_code=status.HTTP_201_CREATED)
async def bulk(body: BulkIn) -> dict[str, int]:
    return {"inserted": len(body.events), "duplicates": 0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level="warning", loop="uvloop", http="httptools"
    )


if __name__ == "__main__":
    main()
