"""The synthetic traffic model of ``shared/reference/attribution-domain.md`` section 5, for ``quills loadgen``
and the demo apps of ``quills up``.

Pure: every draw comes from the ``random.Random`` it is given, and time from the ``now_ms`` argument, so a
seed reproduces a run. Knobs (defaults as in the reference): apps Zipf s=1.1 on volume; android 0.70 /
ios 0.30; organic 0.55; the named media sources and a Zipf tail of 40; 1-50 campaigns per app and source
(Zipf); the country weights, rest uniform over 60 more; event mix session .70, in_app .24, install .04,
reinstall .005, uninstall .01, reattribution .005; in-app names with Zipf customs; revenue on 3 % of in-app
events (log-normal, median 2.99, sigma 1.2; 85 % USD; 1 % refunds); lateness 97 % < 5 s, 2.5 % < 1 h,
0.4 % < 48 h, 0.1 % up to 30 days; 0.5 % duplicate event ids.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import uuid
from array import array
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import msgspec

__all__ = ("DemoApp", "demo_apps", "TrafficModel", "EventPool")

_SOURCES = [
    ("googleadwords_int", 0.24),
    ("Facebook Ads", 0.20),
    ("applovin_int", 0.10),
    ("tiktokglobal_int", 0.08),
    ("Apple Search Ads", 0.07),
    ("unityads_int", 0.06),
    ("ironsource_int", 0.05),
    ("mintegral_int", 0.05),
    ("moloco_int", 0.04),
]
_TAIL = [f"network{i:02d}_int" for i in range(1, 41)]
_COUNTRIES = [
    ("IN", 0.16), ("US", 0.12), ("BR", 0.08), ("ID", 0.07), ("MX", 0.04), ("RU", 0.03), ("TR", 0.03),
    ("PH", 0.03), ("VN", 0.03), ("PK", 0.03), ("EG", 0.02), ("NG", 0.02), ("TH", 0.02), ("DE", 0.02),
    ("GB", 0.02), ("JP", 0.02), ("FR", 0.02), ("KR", 0.015),
]  # fmt: skip
_REST = [
    "AR", "AT", "AU", "BD", "BE", "BG", "CA", "CH", "CL", "CN", "CO", "CZ", "DK", "DZ", "EC", "ES", "FI",
    "GH", "GR", "HK", "HU", "IE", "IL", "IQ", "IT", "JO", "KE", "KZ", "LK", "MA", "MM", "MY", "NL", "NO",
    "NP", "NZ", "PE", "PL", "PT", "RO", "RS", "SA", "SE", "SG", "SK", "TN", "TW", "TZ", "UA", "UG", "UY",
    "UZ", "VE", "ZA", "AE", "AZ", "BY", "CR", "DO", "GT",
]  # fmt: skip
_TYPES = [
    ("session", 0.70), ("in_app", 0.24), ("install", 0.04), ("uninstall", 0.01), ("reinstall", 0.005),
    ("reattribution", 0.005),
]  # fmt: skip
_NAMES = ["af_app_opened", "af_level_achieved", "af_tutorial_completion", "af_add_to_cart"]
_NAMES += ["af_complete_registration", "af_purchase"] + [f"custom_{i}" for i in range(1, 21)]
_LOCAL = {"IN": "INR", "BR": "BRL", "ID": "IDR", "MX": "MXN", "RU": "RUB", "TR": "TRY", "DE": "EUR"}
_LOCAL |= {"FR": "EUR", "GB": "GBP", "JP": "JPY", "KR": "KRW", "PH": "PHP", "TH": "THB", "EG": "EGP"}
_UA = (
    "Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko)"
)


def _zipf(n: int, s: float) -> list[float]:
    """Cumulative Zipf weights of ranks 1..n."""
    return list(itertools.accumulate(1.0 / (k**s) for k in range(1, n + 1)))


def _cumulative(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


@dataclass(frozen=True)
class DemoApp:
    """A demo app: its id and platform (an app id belongs to one store)."""

    app_id: str
    platform: str


def demo_apps(n: int = 1000, *, seed: int = 7) -> list[DemoApp]:
    """``n`` demo apps (1..100,000), rank 1 the busiest: Android package names or iOS store ids, 70/30."""
    if not 1 <= n <= 100_000:
        raise ValueError(f"demo apps must be 1..100000, got {n}")
    rng = random.Random(seed)
    apps = []
    for rank in range(1, n + 1):
        if rng.random() < 0.70:
            apps.append(DemoApp(f"com.quills.demo.app{rank:05d}", "android"))
        else:
            apps.append(DemoApp(f"id{1_400_000_000 + rank}", "ios"))
    return apps


class TrafficModel:
    """Draws apps and events following the reference's traffic model.

    Args:
        apps: the apps traffic goes to, busiest first (Zipf s=1.1 over their ranks).
        rng: the source of randomness.
        devices_per_app: distinct devices of the busiest app, 1..1e9 (default 50,000); app k has
            ``max(50, devices_per_app / k)``.
    """

    def __init__(self, apps: list[DemoApp], rng: random.Random, *, devices_per_app: int = 50_000) -> None:
        if not apps:
            raise ValueError("the traffic model needs at least one app")
        self.apps = apps
        self.rng = rng
        self._app_cum = _zipf(len(apps), 1.1)
        self._source_cum = _cumulative([w for _, w in _SOURCES] + [0.11 * w for w in _norm(_zipf_w(40))])
        self._sources = [s for s, _ in _SOURCES] + _TAIL
        self._country_cum = _cumulative(
            [w for _, w in _COUNTRIES] + [0.0 + (1 - 0.745) / len(_REST)] * len(_REST)
        )
        self._countries = [c for c, _ in _COUNTRIES] + _REST
        self._type_cum = _cumulative([w for _, w in _TYPES])
        self._types = [t for t, _ in _TYPES]
        self._name_cum = _zipf(len(_NAMES), 1.0)
        self._campaign_cum = _zipf(50, 1.2)
        self._devices = devices_per_app
        self._recent: list[str] = []
        self._rank = {a.app_id: i + 1 for i, a in enumerate(apps)}

    def pick(self, cum: list[float], items: list[Any]) -> Any:
        return items[min(bisect.bisect(cum, self.rng.random() * cum[-1]), len(items) - 1)]

    def app(self) -> DemoApp:
        """An app, Zipf-weighted."""
        return self.pick(self._app_cum, self.apps)  # type: ignore[no-any-return]

    def rank(self, app: DemoApp) -> int:
        """``app``'s rank, 1 for the busiest (1 for an app the model does not know)."""
        return self._rank.get(app.app_id, 1)

    def devices(self, app: DemoApp) -> int:
        """How many distinct devices ``app`` has: ``max(50, devices_per_app // rank)``."""
        return max(50, self._devices // self.rank(app))

    def event(self, app: DemoApp, now_ms: int) -> dict[str, Any]:
        """One event of ``app`` as a JSON-ready dict (what an SDK or S2S client would send)."""
        rng = self.rng
        rank = self.rank(app)
        event_type: str = self.pick(self._type_cum, self._types)
        organic = rng.random() < 0.55
        source = "organic" if organic else self.pick(self._source_cum, self._sources)
        if source == "Apple Search Ads" and app.platform != "ios":
            source = "googleadwords_int"
        device = rng.randrange(self.devices(app))
        event_time = now_ms - _lateness_ms(rng)
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if self._recent and rng.random() < 0.005:
            event_id = rng.choice(self._recent)
        else:
            if len(self._recent) >= 1000:
                self._recent.pop(0)
            self._recent.append(event_id)
        country = self.pick(self._country_cum, self._countries)
        e: dict[str, Any] = {
            "event_type": event_type,
            "event_id": event_id,
            "app_id": app.app_id,
            "platform": app.platform,
            "event_time": event_time,
            "event_source": "s2s",
            "sdk_version": "6.14.2",
            "app_version": "3.2.1",
            "os_version": "14" if app.platform == "android" else "17.5",
            "device_id": f"{rank:05d}-{device:09d}",
            "country_code": country,
            "media_source": source,
            "user_agent": _UA,
            "device_model": "SM-S918B" if app.platform == "android" else "iPhone15,2",
            "language": "en-US",
        }
        if app.platform == "android" and rng.random() < 0.92:
            e["advertising_id"] = (
                "00000000-0000-0000-0000-000000000000"
                if rng.random() < 0.08
                else (str(uuid.UUID(int=hash((rank, device)) & ((1 << 128) - 1))))
            )
        if app.platform == "ios" and rng.random() < 0.25:
            e["idfa"] = str(uuid.UUID(int=(rank << 40) + device))
        if rng.random() < 0.40:
            e["customer_user_id"] = f"user-{device}"
        if not organic:
            campaign = self.pick(self._campaign_cum, list(range(1, 51)))
            e["campaign"] = f"{source.split('_')[0].lower()}_campaign_{campaign}"
            e["af_c_id"] = str(1000 + campaign)
            e["af_adset"] = f"adset_{rng.randrange(1, 11)}"
            e["af_ad"] = f"ad_{rng.randrange(1, 6)}"
            e["af_siteid"] = f"site{rng.randrange(10_000)}"
            e["attributed_touch_type"] = "click" if rng.random() < 0.85 else "impression"
            e["is_retargeting"] = rng.random() < 0.05
        if event_type != "install" and event_type not in ("reinstall", "reattribution", "uninstall"):
            e["install_time"] = event_time - rng.randrange(0, 30 * 86_400_000)
        if event_type == "in_app":
            name = self.pick(self._name_cum, _NAMES)
            e["event_name"] = name
            e["event_value"] = '{"af_level":"7","af_score":1200}'
            if rng.random() < 0.03:
                revenue = round(math.exp(math.log(2.99) + 1.2 * rng.gauss(0, 1)), 2)
                if rng.random() < 0.01:
                    revenue = -revenue
                currency = "USD" if rng.random() < 0.85 else _LOCAL.get(country, "EUR")
                e["event_name"] = "af_purchase"
                e["event_revenue"] = revenue
                e["event_revenue_currency"] = currency
        return e


class EventPool:
    """Encoded events of a ``TrafficModel`` for a load generator: ~1-1.5 us of CPU an event in bodies of
    200 on this machine (up to ~2.5 when other processes keep evicting the pools from the caches) instead
    of the model's ~10-25 us, so one process can offer 50k+ events/s and leave the cores to the services.

    Each app keeps a pool of events drawn from the model, filled as the app is picked: up to
    ``max(16, 4 * max_per_app // rank)`` (at most ``max_per_app``) events, so the mix of types, sources,
    campaigns and countries of a busy app is well sampled. An event handed out is a pooled one with a
    fresh ``event_id`` (unique within this pool: a random prefix and a counter), ``event_time`` (now minus
    the pooled event's lateness) and ``device_id`` (one of the app's devices, uniformly, as the model picks
    them). The model's occasional repeated ``event_id`` (a client retry) is not reproduced.

    A pooled event is kept as a ``%``-format with the three fresh fields as its only conversions, so a
    whole body is one ``join`` and one ``%`` over arguments built in bulk (see ``body``).

    Args:
        model: the traffic model events are drawn from (its rng drives the pool too).
        max_per_app: most pooled events of one app, 16..1e6 (default 1,024).
    """

    def __init__(self, model: TrafficModel, *, max_per_app: int = 1024) -> None:
        if not 16 <= max_per_app <= 1_000_000:
            raise ValueError(f"max_per_app must be 16..1000000, got {max_per_app}")
        self.model = model
        self._max = max_per_app
        # Per app: the pooled events' formats and, at the same index, their lateness in ms (an array:
        # read at random, contiguous int64s stay in cache where scattered int objects would not).
        self._pools: dict[str, tuple[list[bytes], array[int]]] = {}
        self._encode = msgspec.json.Encoder().encode
        bits = model.rng.getrandbits(76)
        self._id_prefix = b"%08x-%04x-4%03x-8%03x" % (
            bits >> 44,
            (bits >> 28) & 0xFFFF,
            (bits >> 16) & 0xFFF,
            (bits >> 4) & 0xFFF,
        )
        self._count = 0
        # Device numbers rendered once ("%09d" costs ~3x a plain "%s" of bytes), up to the most devices
        # an app has; apps with more than _DEVICE_TABLE_MAX devices render theirs per event.
        self._device_ids: list[bytes] = []

    def events(self, app: DemoApp, n: int, now_ms: int) -> list[bytes]:
        """``n`` encoded events (JSON objects) of ``app`` happening around ``now_ms``, 1..1e6."""
        formats, args = self._draw(app, n, now_ms)
        return [f % args[3 * i : 3 * i + 3] for i, f in enumerate(formats)]

    def body(self, app: DemoApp, n: int, now_ms: int) -> bytes:
        """A JSON array of ``n`` events of ``app`` happening around ``now_ms``, 1..1e6: the same events as
        ``events`` would give, built in one ``%`` (a third of the CPU of joining ``events``)."""
        formats, args = self._draw(app, n, now_ms)
        # The brackets go on the first and last event so that the 100s of KiB are copied twice (join and
        # %), not four times.
        parts = list(formats)
        parts[0] = b"[" + parts[0]
        parts[-1] += b"]"
        return b",".join(parts) % args

    def _draw(self, app: DemoApp, n: int, now_ms: int) -> tuple[tuple[bytes, ...], tuple[Any, ...]]:
        """The formats of ``n`` pooled events of ``app`` and their arguments, three an event."""
        if not 1 <= n <= 1_000_000:
            raise ValueError(f"events must be 1..1000000 at a time, got {n}")
        model, rng = self.model, self.model.rng
        pool = self._pools.get(app.app_id)
        if pool is None:
            pool = self._pools[app.app_id] = ([], array("q"))
        formats, lateness = pool
        rank, devices = model.rank(app), model.devices(app)
        # While the pool fills, the events handed out are the new ones; then draws from the whole pool.
        fresh = max(0, min(n, min(self._max, max(16, 4 * self._max // rank)) - len(formats)))
        for _ in range(fresh):
            f, late = self._format(model.event(app, now_ms), now_ms, rank)
            formats.append(f)
            lateness.append(late)
        size = len(formats)
        picks = list(range(size - fresh, size)) + _uniform(rng, n - fresh, size)
        args: list[Any] = [0] * (3 * n)
        # The id counter starts at 2**47 so that "%x" (no width: CPython's fast path) gives 12 digits.
        first = _ID_BASE + self._count
        args[0::3] = range(first, first + n)
        args[1::3] = [now_ms - lateness[i] for i in picks]
        drawn = _uniform(rng, n, devices)
        if devices <= _DEVICE_TABLE_MAX:
            table = self._device_ids
            if len(table) < devices:
                table.extend(b"%09d" % d for d in range(len(table), devices))
            args[2::3] = _take(table, drawn)
        else:
            args[2::3] = [b"%09d" % d for d in drawn]
        self._count += n
        return _take(formats, picks), tuple(args)

    def _format(self, event: dict[str, Any], now_ms: int, rank: int) -> tuple[bytes, int]:
        # The tag first (msgspec reads a tagged union fastest that way), then the fields each event gets
        # fresh (as conversions), then the rest as the model made it (any "%" in it escaped).
        head = b'{"event_type":%s,"event_id":"%s-%%x","event_time":%%d,"device_id":"%05d-%%s",' % (
            self._encode(event.pop("event_type")),
            self._id_prefix,
            rank,
        )
        lateness = now_ms - event.pop("event_time")
        del event["event_id"], event["device_id"]
        return head + self._encode(event)[1:].replace(b"%", b"%%"), lateness


_ID_BASE = 1 << 47
_DEVICE_TABLE_MAX = 1 << 17


def _uniform(rng: random.Random, n: int, bound: int) -> list[int]:
    """``n`` draws from ``0..bound-1`` (``bound`` 1..2**63), from ``rng``'s bytes in one call: 32-bit
    words (64-bit when ``bound`` exceeds 2**20) reduced modulo ``bound``, a bias below 2**-12 (a fifth of
    ``int(random() * bound)`` per draw's CPU)."""
    words = array("I" if bound <= 1 << 20 else "Q")
    words.frombytes(rng.randbytes(words.itemsize * n))
    return [w % bound for w in words]


def _take(items: list[Any], indices: list[int]) -> tuple[Any, ...]:
    """``items`` at ``indices`` (at least one), as a tuple."""
    if len(indices) == 1:
        return (items[indices[0]],)
    return itemgetter(*indices)(items)  # type: ignore[no-any-return]


def _zipf_w(n: int) -> list[float]:
    return [1.0 / k for k in range(1, n + 1)]


def _norm(weights: list[float]) -> list[float]:
    total = sum(weights)
    return [w / total for w in weights]


def _lateness_ms(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.97:
        return int(rng.random() * 5_000)
    if r < 0.995:
        return int(5_000 + rng.random() * 3_595_000)
    if r < 0.999:
        return int(3_600_000 + rng.random() * 169_200_000)
    return int(172_800_000 + rng.random() * 27 * 86_400_000)
