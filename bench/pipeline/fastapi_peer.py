"""The peer of the ingest benchmark: a plain FastAPI + pydantic endpoint doing the same work as quills'
ingest: bearer key -> app (sha256 lookup), pydantic validation of the same event union and limits, the
same server stamps, one JSON encode per event, publish to the same NATS JetStream subjects and answer 202
only after the broker acknowledged (``js.publish`` per event, concurrently for a batch).

Runs in its own venv (``bench/.venvs/fastapi``): ``python fastapi_peer.py --port P --nats URL --db FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sqlite3
import time
from typing import Annotated, Literal, Union

import nats
import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

Millis = Annotated[int, Field(ge=946_684_800_000, lt=4_102_444_800_000)]
Uuid = Annotated[
    str, Field(pattern=r"^[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}$")
]
Short = Annotated[str, Field(max_length=100)]
Name = Annotated[str, Field(min_length=1, max_length=100)]
Personal = Annotated[str, Field(min_length=1, max_length=200)]
Quasi = Annotated[str, Field(max_length=300)]


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event_id: Uuid
    app_id: Name
    platform: Literal["android", "ios"]
    event_time: Millis
    install_time: Millis | None = None
    received_at: int = 0
    event_source: Literal["sdk", "s2s"] = "s2s"
    sdk_version: Short
    app_version: Short | None = None
    os_version: Short
    device_id: Personal
    idfa: Uuid | None = None
    idfv: Uuid | None = None
    advertising_id: Personal | None = None
    oaid: Personal | None = None
    amazon_aid: Personal | None = None
    android_id: Personal | None = None
    imei: Personal | None = None
    customer_user_id: Personal | None = None
    ip: Annotated[str, Field(max_length=45)] | None = None
    att: Literal["authorized", "denied", "not_determined", "restricted"] | None = None
    is_lat: bool | None = None
    user_agent: Quasi | None = None
    device_model: Quasi | None = None
    device_category: Literal["phone", "tablet"] | None = None
    language: Quasi | None = None
    carrier: Quasi | None = None
    wifi: bool | None = None
    country_code: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "ZZ"
    region: Quasi | None = None
    city: Quasi | None = None
    postal_code: Quasi | None = None
    dma: Quasi | None = None
    media_source: Name
    is_organic: bool = False
    af_prt: Short | None = None
    af_channel: Short | None = None
    af_siteid: Short | None = None
    af_sub_siteid: Short | None = None
    campaign: Short | None = None
    af_c_id: Short | None = None
    af_adset: Short | None = None
    af_adset_id: Short | None = None
    af_ad: Short | None = None
    af_ad_id: Short | None = None
    af_ad_type: Short | None = None
    af_sub1: Short | None = None
    af_sub2: Short | None = None
    af_sub3: Short | None = None
    af_sub4: Short | None = None
    af_sub5: Short | None = None
    click_id: Short | None = None
    attributed_touch_type: Literal["click", "impression", "tv", "pre-install"] | None = None
    attributed_touch_time: Millis | None = None
    match_type: Literal["id_matching", "referrer", "probabilistic", "srn"] | None = None
    is_retargeting: bool = False
    retargeting_conversion_type: Literal["re-engagement", "re-attribution"] | None = None


class Install(Event):
    event_type: Literal["install", "reinstall", "reattribution", "uninstall"]
    af_cost_model: Literal["CPI", "CPC", "CPM"] | None = None
    af_cost_value: Annotated[float, Field(ge=0)] | None = None
    af_cost_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None


class InApp(Event):
    event_type: Literal["in_app"]
    install_time: Millis
    event_name: Name
    event_value: Annotated[str, Field(max_length=1000)] | None = None
    event_revenue: Annotated[float, Field(ge=-1e9, le=1e9)] | None = None
    event_revenue_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    event_revenue_usd: float | None = None
    is_receipt_validated: bool | None = None


class Session(Event):
    event_type: Literal["session"]
    install_time: Millis


AnyEvent = Annotated[Union[Install, InApp, Session], Field(discriminator="event_type")]  # noqa: UP007
ONE = TypeAdapter(AnyEvent)
MANY = TypeAdapter(Annotated[list[AnyEvent], Field(min_length=1, max_length=1000)])
TOPIC = {"install": "installs.v1", "reinstall": "installs.v1", "reattribution": "installs.v1",
         "uninstall": "installs.v1", "in_app": "inapps.v1", "session": "sessions.v1"}  # fmt: skip
FX = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "INR": 0.012, "BRL": 0.18, "IDR": 0.000063, "MXN": 0.055,
      "RUB": 0.011, "TRY": 0.029, "PHP": 0.017, "VND": 0.000039, "PKR": 0.0036, "EGP": 0.02, "NGN": 0.00065,
      "THB": 0.028, "JPY": 0.0067, "KRW": 0.00072, "CAD": 0.73, "AUD": 0.65, "CNY": 0.14}  # fmt: skip

app = FastAPI()
state: dict[str, object] = {}


def owner(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "unauthorized")
    found = state["keys"].get(hashlib.sha256(authorization[7:].encode()).hexdigest())  # type: ignore[attr-defined]
    if found is None:
        raise HTTPException(401, "unauthorized")
    return str(found)


async def accept(events: list[Event], app_id: str) -> JSONResponse:
    now = time.time_ns() // 1_000_000
    for e in events:
        if e.app_id != app_id:
            raise HTTPException(403, "forbidden_app")
        if isinstance(e, InApp) and e.event_revenue is not None:
            if e.event_revenue_currency not in FX:
                raise HTTPException(422, "event_revenue_currency")
            e.event_revenue_usd = round(e.event_revenue * FX[e.event_revenue_currency], 6)
        e.received_at = now
        e.is_organic = e.media_source == "organic"
        if isinstance(e, Install) and e.install_time is None:
            e.install_time = e.event_time
    js = state["js"]
    await asyncio.gather(
        *(js.publish(TOPIC[e.event_type], e.model_dump_json(exclude_defaults=True).encode()) for e in events)  # type: ignore[attr-defined]
    )
    return JSONResponse({"accepted": len(events)}, status_code=202)


@app.post("/v1/events", status_code=202)
async def one(request: Request, authorization: str | None = Header(None)) -> JSONResponse:
    app_id = owner(authorization)
    try:
        event = ONE.validate_json(await request.body())
    except ValidationError as exc:
        return JSONResponse({"error": "validation_failed", "errors": exc.errors(include_url=False)}, 422)
    return await accept([event], app_id)


@app.post("/v1/events/batch", status_code=202)
async def batch(request: Request, authorization: str | None = Header(None)) -> JSONResponse:
    app_id = owner(authorization)
    body = await request.body()
    if len(body) > 1 << 20:
        raise HTTPException(413, "payload_too_large")
    try:
        events = MANY.validate_json(body)
    except ValidationError as exc:
        return JSONResponse({"error": "validation_failed", "errors": exc.errors(include_url=False)}, 422)
    return await accept(events, app_id)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    with sqlite3.connect(args.db) as conn:
        state["keys"] = dict(conn.execute("SELECT key_sha256, app_id FROM apps").fetchall())
    nc = await nats.connect(args.nats)
    state["js"] = nc.jetstream()
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                            http="httptools", loop="uvloop")  # fmt: skip
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
